/**
 * A Node.js file as an {@link IoBackend}: positional reads and writes on a file descriptor.
 * @module
 */
import * as fs from "node:fs";
import { ImageError } from "../../errors.js";
import type { IoBackend, IoCapabilities } from "../../io/backend.js";

function ioError(action: string, name: string, e: unknown): ImageError {
  const err = e as NodeJS.ErrnoException;
  const why = err?.code === "ENOENT" ? "No such file or directory" : err?.message ?? String(e);
  const code = err?.code === "EACCES" || err?.code === "EPERM" || err?.code === "EROFS" ? "ERR_READ_ONLY" : "ERR_IO";
  return new ImageError(code, `Could not ${action} '${name}': ${why}`, { file: name, cause: e });
}

/** Options of {@link NodeFileBackend.open}. */
export interface NodeFileOptions {
  readOnly?: boolean;
  /** Create the file (truncating it) — for `create`. */
  create?: boolean;
  /**
   * Read and write on the calling thread (`fs.readSync`/`fs.writeSync`) instead of libuv's
   * thread pool. Each request then costs no hand-over to a worker thread and back, which
   * dominates for files in the page cache or on tmpfs, and writes never contend for the file's
   * lock with each other; but every request blocks the event loop until the kernel is done.
   * Right for a process that does nothing else (the CLI); wrong for a server. Default false.
   */
  blocking?: boolean;
  /**
   * `"unsafe"`: {@link NodeFileBackend.flush} returns without asking the kernel to make the
   * file durable (qemu-img's `-t unsafe`, its default for `convert` targets): the data reaches
   * the disk when the kernel writes it back, and a power loss before that can lose it.
   * Default `"writeback"` (flush is `fdatasync`).
   */
  cache?: "writeback" | "unsafe";
  /**
   * Refuse anything but a regular file (for files an image names: a FIFO would block open(2)
   * forever, a device is not the caller's choice). Checked before opening, and the open uses
   * `O_NONBLOCK` and is checked again on the descriptor, so a FIFO swapped in meanwhile cannot
   * block either. Default false (a path the user names may be a pipe or a device).
   */
  regularOnly?: boolean;
  /** Refuse to follow a symbolic link in the last component (`O_NOFOLLOW`). Default false. */
  noFollow?: boolean;
}

function notRegular(path: string, st: fs.Stats): ImageError {
  const kind = st.isFIFO() ? "a FIFO"
    : st.isBlockDevice() ? "a block device"
    : st.isCharacterDevice() ? "a character device"
    : st.isSocket() ? "a socket"
    : st.isDirectory() ? "a directory"
    : "not a regular file";
  return new ImageError(
    "ERR_OPEN_DENIED",
    `Refusing to open '${path}': it is ${kind}, and files an image names must be regular files`,
    { file: path },
  );
}

/** A file opened with `node:fs`. */
export class NodeFileBackend implements IoBackend {
  readonly capabilities: IoCapabilities;
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly fd: number,
    writable: boolean,
    /**
     * Blocking reads and writes (see {@link NodeFileOptions.blocking}). May be changed between
     * requests: a caller that learns more about its workload after opening can switch.
     */
    public blocking: boolean,
    private readonly unsafeFlush: boolean,
  ) {
    this.capabilities = { writable, sparse: true };
  }

  /** Opens `path`. Throws an {@link ImageError} (`ERR_IO`) naming the file when it cannot. */
  static async open(path: string, options: NodeFileOptions = {}): Promise<NodeFileBackend> {
    const c = fs.constants;
    let flags: number = options.create ? c.O_RDWR | c.O_CREAT | c.O_TRUNC : options.readOnly ? c.O_RDONLY : c.O_RDWR;
    if (options.regularOnly) {
      const before = await fs.promises.stat(path).catch(() => undefined);
      if (before && !before.isFile()) throw notRegular(path, before);
      flags |= c.O_NONBLOCK;
    }
    if (options.noFollow) flags |= c.O_NOFOLLOW;
    const fd = await new Promise<number>((resolve, reject) =>
      fs.open(path, flags, 0o644, (err, fd) => (err ? reject(ioError("open", path, err)) : resolve(fd))),
    );
    const st = fs.fstatSync(fd);
    if (options.regularOnly && !st.isFile()) {
      fs.closeSync(fd);
      throw notRegular(path, st);
    }
    if (st.isDirectory()) {
      fs.closeSync(fd);
      throw new ImageError("ERR_IO", `Could not open '${path}': Is a directory`, { file: path });
    }
    return new NodeFileBackend(path, fd, !options.readOnly, !!options.blocking, options.cache === "unsafe");
  }

  /** Node throws its own RangeError text for a position it cannot take: refuse it as ours. */
  private badOffset(action: string, offset: number, length: number): ImageError | undefined {
    if (Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(offset + length)) return undefined;
    const why = `offset ${offset} (+${length}) is out of range`;
    return new ImageError("ERR_IO", `Could not ${action} '${this.name}': ${why}`, { file: this.name });
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    const bad = this.badOffset("read", offset, into.length);
    if (bad) return Promise.reject(bad);
    if (this.blocking) {
      try {
        return Promise.resolve(fs.readSync(this.fd, into, 0, into.length, offset));
      } catch (e) {
        return Promise.reject(ioError("read", this.name, e));
      }
    }
    return new Promise((resolve, reject) =>
      fs.read(this.fd, into, 0, into.length, offset, (err, n) => (err ? reject(ioError("read", this.name, err)) : resolve(n))),
    );
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const bad = this.badOffset("write", offset, data.length);
    if (bad) throw bad;
    let done = 0;
    if (this.blocking) {
      try {
        while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
      } catch (e) {
        throw ioError("write", this.name, e);
      }
      return;
    }
    while (done < data.length) {
      done += await new Promise<number>((resolve, reject) =>
        fs.write(this.fd, data, done, data.length - done, offset + done, (err, n) =>
          err ? reject(ioError("write", this.name, err)) : resolve(n),
        ),
      );
    }
  }

  flush(): Promise<void> {
    if (this.unsafeFlush) return Promise.resolve();
    return new Promise((resolve, reject) =>
      fs.fdatasync(this.fd, (err) =>
        // Character devices (/dev/null) have nothing to sync and refuse with EINVAL.
        err && !(err.code === "EINVAL" && fs.fstatSync(this.fd).isCharacterDevice())
          ? reject(ioError("flush", this.name, err))
          : resolve(),
      ),
    );
  }

  async size(): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.fstat(this.fd, (err, st) => (err ? reject(ioError("stat", this.name, err)) : resolve(st.size))),
    );
  }

  truncate(size: number): Promise<void> {
    return new Promise((resolve, reject) =>
      fs.ftruncate(this.fd, size, (err) => (err ? reject(ioError("truncate", this.name, err)) : resolve())),
    );
  }

  /** Bytes the file occupies on disk (for `info`'s `actual-size`). */
  async allocatedSize(): Promise<number> {
    const st = await new Promise<fs.Stats>((resolve, reject) =>
      fs.fstat(this.fd, (err, s) => (err ? reject(ioError("stat", this.name, err)) : resolve(s))),
    );
    return st.blocks * 512;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve, reject) =>
      fs.close(this.fd, (err) => (err ? reject(ioError("close", this.name, err)) : resolve())),
    );
  }
}
