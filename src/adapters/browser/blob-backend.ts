/**
 * A `Blob` (or `File`) as a read-only {@link IoBackend}: each read slices the Blob and awaits
 * its bytes, so a multi-gigabyte `File` from an `<input type=file>` is never loaded whole.
 * @module
 */
import { ImageError } from "../../errors.js";
import type { IoBackend, IoCapabilities } from "../../io/backend.js";

/** Options of {@link BlobBackend}. */
export interface BlobBackendOptions {
  /** Label for messages; default the File's `name`, else `blob`. */
  name?: string;
}

/** A read-only view of a Blob. Writes and truncation throw `ERR_READ_ONLY`. */
export class BlobBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities = { writable: false };
  private closed = false;

  constructor(
    private readonly blob: Blob,
    options: BlobBackendOptions = {},
  ) {
    const fileName = (blob as Partial<File>).name;
    this.name = options.name ?? (typeof fileName === "string" && fileName !== "" ? fileName : "blob");
  }

  private check(): void {
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
  }

  private readOnly(action: string): never {
    throw new ImageError("ERR_READ_ONLY", `Cannot ${action} '${this.name}': a Blob is read-only`, { file: this.name });
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.check();
    const size = this.blob.size;
    if (offset >= size || into.length === 0) return 0;
    const n = Math.min(into.length, size - offset);
    let bytes: ArrayBuffer;
    try {
      bytes = await this.blob.slice(offset, offset + n).arrayBuffer();
    } catch (e) {
      // A File whose underlying file changed or vanished since it was picked fails here.
      throw new ImageError("ERR_IO", `Could not read '${this.name}': ${e instanceof Error ? e.message : String(e)}`, {
        file: this.name,
        cause: e,
      });
    }
    into.set(new Uint8Array(bytes));
    return bytes.byteLength;
  }

  async write(): Promise<void> {
    this.check();
    this.readOnly("write to");
  }

  async flush(): Promise<void> {
    this.check();
  }

  async size(): Promise<number> {
    this.check();
    return this.blob.size;
  }

  async truncate(): Promise<void> {
    this.check();
    this.readOnly("resize");
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
