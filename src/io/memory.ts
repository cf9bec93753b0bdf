/**
 * An in-memory, growable {@link IoBackend}: for tests, for images built in a browser, for
 * small scratch files.
 * @module
 */
import { ImageError } from "../errors.js";
import type { IoBackend, IoCapabilities } from "./backend.js";

/** Options of {@link MemoryBackend}. */
export interface MemoryBackendOptions {
  name?: string;
  readOnly?: boolean;
  /**
   * Largest size the file may grow to, in bytes; a write past it fails with `ERR_IMAGE_FULL`.
   * Default: as large as an `Uint8Array` can be (a failed allocation is the same error).
   */
  maxSize?: number;
}

/** A file held in memory. `bytes()` gives its current contents. */
export class MemoryBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities;
  // Always over an ArrayBuffer, so that bytes() can be a BlobPart (`new Blob([backend.bytes()])`).
  private buf: Uint8Array<ArrayBuffer>;
  private length: number;
  private closed = false;
  private readonly maxSize: number;

  /**
   * Wraps `initial` (kept, not copied: later writes modify it until the buffer must grow; only a
   * view of a SharedArrayBuffer is copied).
   */
  constructor(initial: Uint8Array = new Uint8Array(0), options: MemoryBackendOptions = {}) {
    const shared = typeof SharedArrayBuffer !== "undefined" && initial.buffer instanceof SharedArrayBuffer;
    this.buf = shared ? new Uint8Array(initial) : (initial as Uint8Array<ArrayBuffer>);
    this.length = initial.length;
    this.name = options.name ?? "memory";
    this.capabilities = { writable: !options.readOnly, sparse: true };
    this.maxSize = options.maxSize ?? Number.MAX_SAFE_INTEGER;
  }

  /** The file's contents (a view; valid until the next write). */
  bytes(): Uint8Array<ArrayBuffer> {
    return this.buf.subarray(0, this.length);
  }

  private check(): void {
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.check();
    if (offset >= this.length) return 0;
    const n = Math.min(into.length, this.length - offset);
    into.set(this.buf.subarray(offset, offset + n));
    return n;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check();
    if (!this.capabilities.writable) throw new ImageError("ERR_READ_ONLY", `${this.name} is read-only`);
    const end = offset + data.length;
    this.ensure(end);
    // A gap left by an earlier shrink may hold stale bytes: it must read back as zeros.
    if (offset > this.length) this.buf.fill(0, this.length, offset);
    this.buf.set(data, offset);
    if (end > this.length) this.length = end;
  }

  private ensure(end: number): void {
    if (end <= this.buf.length) return;
    const full = (why: string): ImageError =>
      new ImageError("ERR_IMAGE_FULL", `Could not write '${this.name}': growing it to ${end} bytes ${why}`, {
        file: this.name,
      });
    if (end > this.maxSize) throw full(`exceeds its limit of ${this.maxSize} bytes`);
    let cap = Math.max(this.buf.length * 2, 4096);
    while (cap < end) cap *= 2;
    cap = Math.min(cap, Math.max(end, this.maxSize));
    let next: Uint8Array<ArrayBuffer>;
    try {
      next = new Uint8Array(cap);
    } catch {
      // A write far past the end (a corrupt table entry, say) asks for more than memory holds.
      try {
        next = new Uint8Array(end);
      } catch (e) {
        throw full(`failed (${(e as Error).message})`);
      }
    }
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  async flush(): Promise<void> {
    this.check();
  }

  async size(): Promise<number> {
    this.check();
    return this.length;
  }

  async truncate(size: number): Promise<void> {
    this.check();
    if (!this.capabilities.writable) throw new ImageError("ERR_READ_ONLY", `${this.name} is read-only`);
    if (size > this.length) {
      this.ensure(size);
      this.buf.fill(0, this.length, size);
    }
    this.length = size;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
