/**
 * A pass-through {@link IoBackend} that runs a hook before the first write. VHDX needs a new
 * DataWriteGuid in its headers before guest data changes, and the engine writes guest data
 * straight to the mapped file, so the mapped file is this wrapper.
 * @module
 */
import type { IoBackend } from "../../io/backend.js";

/** Wraps `inner`; `beforeWrite` runs (once it resolves, never again) before any write or truncate. */
export class VhdxGuardedBackend implements IoBackend {
  private ready = false;

  constructor(
    private readonly inner: IoBackend,
    private readonly beforeWrite: () => Promise<void>,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get capabilities(): IoBackend["capabilities"] {
    return this.inner.capabilities;
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    return this.inner.read(offset, into);
  }

  private async arm(): Promise<void> {
    if (this.ready) return;
    await this.beforeWrite();
    this.ready = true;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.ready) await this.arm();
    return this.inner.write(offset, data);
  }

  async truncate(size: number): Promise<void> {
    if (!this.ready) await this.arm();
    return this.inner.truncate(size);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  size(): Promise<number> {
    return this.inner.size();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
