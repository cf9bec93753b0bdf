/**
 * A view of an extent file that runs a hook before its first write. Data mappings point at
 * this view, so the instance learns about the first guest write even when the engine writes
 * into already allocated grains without asking the driver (VMDK changes its CID then).
 * @module
 */
import type { IoBackend, IoCapabilities } from "../../io/backend.js";

/** Wraps `inner`; `beforeFirstWrite` runs (once, awaited) before the first `write`. */
export class VmdkWriteHookBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities;
  private armed = true;

  constructor(
    private readonly inner: IoBackend,
    private readonly beforeFirstWrite: () => Promise<void>,
  ) {
    this.name = inner.name;
    this.capabilities = inner.capabilities;
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    return this.inner.read(offset, into);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.armed) {
      await this.beforeFirstWrite();
      this.armed = false;
    }
    await this.inner.write(offset, data);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  size(): Promise<number> {
    return this.inner.size();
  }

  truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }

  /** The view does not own the file: the extent closes it. */
  async close(): Promise<void> {}
}
