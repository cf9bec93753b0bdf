/**
 * A file of the Origin Private File System as a writable, persistent {@link IoBackend}.
 *
 * Two ways in: inside a dedicated worker a `FileSystemSyncAccessHandle` (positional reads and
 * writes straight into the file, the fast path, and an exclusive lock on it); elsewhere the
 * async `FileSystemFileHandle` API, whose writes go to a swap file that replaces the file only
 * when the writable closes — so the backend keeps the writes since the last `flush` in memory
 * (reads see them) and commits them at `flush`, at `close`, or when they pass a bound.
 * @module
 */
import { ImageError } from "../../errors.js";
import type { IoBackend, IoCapabilities } from "../../io/backend.js";

/** The members of `FileSystemSyncAccessHandle` used (Chromium ≥ 108: synchronous methods). */
interface SyncAccessHandleLike {
  read(into: ArrayBufferView, options: { at: number }): number;
  write(data: ArrayBufferView, options: { at: number }): number;
  flush(): void;
  getSize(): number;
  truncate(size: number): void;
  close(): void;
}

/** What is written through the async API (assignable to the DOM's `FileSystemWriteChunkType`). */
type WriteChunk = { type: "write"; position: number; data: Uint8Array<ArrayBuffer> } | { type: "truncate"; size: number };

interface WritableLike {
  write(chunk: WriteChunk): Promise<void>;
  close(): Promise<void>;
  abort?(): Promise<void>;
}

/** The members of `FileSystemFileHandle` used. */
export interface OpfsFileHandleLike {
  readonly kind: "file";
  readonly name: string;
  getFile(): Promise<Blob>;
  createWritable(options?: { keepExistingData?: boolean }): Promise<WritableLike>;
  createSyncAccessHandle?(): Promise<SyncAccessHandleLike>;
}

/** Options of {@link OpfsBackend.open}. */
export interface OpfsBackendOptions {
  /** Open without write access. */
  readOnly?: boolean;
  /** Empty the file first (a new image). */
  truncate?: boolean;
  /**
   * `sync`: a sync access handle (dedicated workers only; fails elsewhere); `async`: the async
   * API; `auto` (default): sync where the runtime offers it, else async.
   */
  mode?: "auto" | "sync" | "async";
  /** Async mode: most bytes of uncommitted writes kept before an automatic commit. Default 64 MiB. */
  maxPendingBytes?: number;
}

/** Whether `x` looks like a `FileSystemFileHandle` (checked by shape: it may come from another realm). */
export function isOpfsFileHandle(x: unknown): x is OpfsFileHandleLike {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "file" &&
    typeof (x as { getFile?: unknown }).getFile === "function" &&
    typeof (x as { createWritable?: unknown }).createWritable === "function";
}

function ioError(name: string, action: string, e: unknown): ImageError {
  return new ImageError("ERR_IO", `Could not ${action} '${name}' in the origin private file system: ${e instanceof Error ? e.message : String(e)}`, {
    file: name,
    cause: e,
  });
}

/** One OPFS file. Open with {@link OpfsBackend.open}. */
export class OpfsBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities;
  private closed = false;
  // Async mode: writes since the last commit, in order (later ones win), and the file's length.
  private pending: Array<{ offset: number; data: Uint8Array<ArrayBuffer> }> = [];
  private pendingBytes = 0;
  private truncatedTo: number | undefined;
  private length = 0;

  private constructor(
    private readonly handle: OpfsFileHandleLike,
    private readonly sync: SyncAccessHandleLike | undefined,
    readOnly: boolean,
    private readonly maxPendingBytes: number,
  ) {
    this.name = handle.name;
    this.capabilities = { writable: !readOnly, sparse: false };
  }

  /**
   * Opens `handle`. With a sync access handle the file is locked until `close`; a second open
   * of the same file then fails (`ERR_IO`), as the platform decides.
   */
  static async open(handle: OpfsFileHandleLike, options: OpfsBackendOptions = {}): Promise<OpfsBackend> {
    const mode = options.mode ?? "auto";
    const canSync = typeof handle.createSyncAccessHandle === "function" &&
      typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";
    let sync: SyncAccessHandleLike | undefined;
    if (mode === "sync" || (mode === "auto" && canSync)) {
      if (!handle.createSyncAccessHandle) {
        throw new ImageError("ERR_UNSUPPORTED_FEATURE", `Cannot open '${handle.name}' with a sync access handle: this runtime has none (use a dedicated worker)`);
      }
      try {
        sync = await handle.createSyncAccessHandle();
      } catch (e) {
        if (mode === "sync") throw ioError(handle.name, "open", e);
      }
    }
    const backend = new OpfsBackend(handle, sync, !!options.readOnly, options.maxPendingBytes ?? 64 * 1024 * 1024);
    if (sync) {
      if (options.truncate) sync.truncate(0);
      backend.length = sync.getSize();
    } else {
      backend.length = options.truncate ? 0 : (await handle.getFile()).size;
      if (options.truncate) backend.truncatedTo = 0;
    }
    return backend;
  }

  /** Whether reads and writes go through a sync access handle (the fast path). */
  get synchronous(): boolean {
    return this.sync !== undefined;
  }

  private check(): void {
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
  }

  private checkWritable(): void {
    if (!this.capabilities.writable) throw new ImageError("ERR_READ_ONLY", `${this.name} is open read-only`, { file: this.name });
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.check();
    if (offset >= this.length || into.length === 0) return 0;
    const n = Math.min(into.length, this.length - offset);
    const target = into.subarray(0, n);
    if (this.sync) {
      let done = 0;
      while (done < n) {
        const got = this.sync.read(target.subarray(done), { at: offset + done });
        if (got <= 0) break;
        done += got;
      }
      target.fill(0, done);
      return n;
    }
    // The committed file, zero beyond its end (a truncation that grew it), then the pending writes.
    const committedEnd = this.truncatedTo ?? Number.MAX_SAFE_INTEGER;
    target.fill(0);
    let file: Blob;
    try {
      file = await this.handle.getFile();
    } catch (e) {
      throw ioError(this.name, "read", e);
    }
    const end = Math.min(offset + n, file.size, committedEnd);
    if (end > offset) target.set(new Uint8Array(await file.slice(offset, end).arrayBuffer()));
    for (const w of this.pending) {
      const from = Math.max(offset, w.offset);
      const to = Math.min(offset + n, w.offset + w.data.length);
      if (from < to) target.set(w.data.subarray(from - w.offset, to - w.offset), from - offset);
    }
    return n;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check();
    this.checkWritable();
    if (data.length === 0) return;
    if (this.sync) {
      let done = 0;
      while (done < data.length) done += this.sync.write(data.subarray(done), { at: offset + done });
      this.length = Math.max(this.length, offset + data.length);
      return;
    }
    // The caller's buffer is not kept: a copy waits for the commit.
    this.pending.push({ offset, data: data.slice() });
    this.pendingBytes += data.length;
    this.length = Math.max(this.length, offset + data.length);
    if (this.pendingBytes > this.maxPendingBytes) await this.commit();
  }

  /** Async mode: writes the pending changes to the file (one swap-file replacement). */
  private async commit(): Promise<void> {
    if (this.pending.length === 0 && this.truncatedTo === undefined) return;
    const pending = this.pending;
    const truncatedTo = this.truncatedTo;
    try {
      const w = await this.handle.createWritable({ keepExistingData: true });
      if (truncatedTo !== undefined) await w.write({ type: "truncate", size: truncatedTo });
      for (const p of pending) await w.write({ type: "write", position: p.offset, data: p.data });
      if (this.length > (truncatedTo ?? 0)) await w.write({ type: "truncate", size: this.length });
      await w.close();
    } catch (e) {
      throw ioError(this.name, "write", e);
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.truncatedTo = undefined;
  }

  async flush(): Promise<void> {
    this.check();
    if (!this.capabilities.writable) return;
    if (this.sync) this.sync.flush();
    else await this.commit();
  }

  async size(): Promise<number> {
    this.check();
    return this.length;
  }

  async truncate(size: number): Promise<void> {
    this.check();
    this.checkWritable();
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`Invalid file size ${size}`);
    if (this.sync) {
      this.sync.truncate(size);
      this.length = size;
      return;
    }
    // Pending writes past the new end are cut; the committed file is cut at commit.
    this.pending = this.pending
      .filter((p) => p.offset < size)
      .map((p) => (p.offset + p.data.length > size ? { offset: p.offset, data: p.data.subarray(0, size - p.offset) } : p));
    this.truncatedTo = Math.min(this.truncatedTo ?? Number.MAX_SAFE_INTEGER, size, this.length);
    this.length = size;
  }

  /** Commits pending writes (async mode) or releases the lock (sync mode). */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.capabilities.writable) {
        if (this.sync) this.sync.flush();
        else await this.commit();
      }
    } finally {
      this.closed = true;
      this.sync?.close();
    }
  }
}
