/**
 * A Deno file as an {@link IoBackend}. Deno files have a position but no positional
 * read/write, so every access is a seek followed by a read or write, serialised by a mutex
 * (the IoBackend contract allows concurrent calls).
 * @module
 */
import { Mutex } from "../../core/mutex.js";
import { ImageError, type ImageErrorCode } from "../../errors.js";
import type { IoBackend, IoCapabilities } from "../../io/backend.js";
import { denoApi, type DenoFsFile } from "./deno-api.js";

const SEEK_START = 0;

function ioError(action: string, name: string, e: unknown): ImageError {
  const kind = e instanceof Error ? e.name : "";
  const why = kind === "NotFound" ? "No such file or directory" : e instanceof Error ? e.message : String(e);
  // NotCapable: the script lacks --allow-read/--allow-write for this path.
  const code: ImageErrorCode = kind === "PermissionDenied" || kind === "NotCapable" ? "ERR_READ_ONLY" : "ERR_IO";
  return new ImageError(code, `Could not ${action} '${name}': ${why}`, { file: name, cause: e });
}

/** Options of {@link DenoFileBackend.open}. */
export interface DenoFileOptions {
  readOnly?: boolean;
  /** Create the file (truncating it) — for `create`. */
  create?: boolean;
  /**
   * Refuse anything but a regular file (for files an image names: a FIFO would block the open
   * forever). Checked before opening and again on the open file. Deno's open has no
   * `O_NONBLOCK`, so a FIFO swapped in between the two can still block. Default false.
   */
  regularOnly?: boolean;
}

/** A file opened with `Deno.open`. Needs `--allow-read` (and `--allow-write` unless read-only). */
export class DenoFileBackend implements IoBackend {
  readonly capabilities: IoCapabilities;
  private readonly lock = new Mutex();
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly file: DenoFsFile,
    writable: boolean,
  ) {
    this.capabilities = { writable, sparse: true };
  }

  /** Opens `path`. Throws an {@link ImageError} (`ERR_IO`, `ERR_READ_ONLY`) naming the file when it cannot. */
  static async open(path: string, options: DenoFileOptions = {}): Promise<DenoFileBackend> {
    const writable = !options.readOnly || !!options.create;
    const refuse = () =>
      new ImageError("ERR_OPEN_DENIED", `Refusing to open '${path}': files an image names must be regular files`, {
        file: path,
      });
    if (options.regularOnly) {
      const before = await denoApi().stat(path).catch(() => undefined);
      if (before && !before.isFile) throw refuse();
    }
    let file: DenoFsFile;
    try {
      file = await denoApi().open(path, {
        read: true,
        write: writable,
        create: !!options.create,
        truncate: !!options.create,
        mode: 0o644,
      });
    } catch (e) {
      throw ioError("open", path, e);
    }
    const st = await file.stat().catch((e: unknown) => {
      file.close();
      throw ioError("stat", path, e);
    });
    if (options.regularOnly && !st.isFile) {
      file.close();
      throw refuse();
    }
    if (st.isDirectory) {
      file.close();
      throw new ImageError("ERR_IO", `Could not open '${path}': Is a directory`, { file: path });
    }
    return new DenoFileBackend(path, file, writable);
  }

  private check(): void {
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    return this.lock.run(async () => {
      this.check();
      try {
        await this.file.seek(offset, SEEK_START);
        let done = 0;
        // FsFile.read may stop short of the buffer before the end of the file.
        while (done < into.length) {
          const n = await this.file.read(into.subarray(done));
          if (n === null || n === 0) break;
          done += n;
        }
        return done;
      } catch (e) {
        throw ioError("read", this.name, e);
      }
    });
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.lock.run(async () => {
      this.check();
      try {
        await this.file.seek(offset, SEEK_START);
        let done = 0;
        while (done < data.length) done += await this.file.write(data.subarray(done));
      } catch (e) {
        throw ioError("write", this.name, e);
      }
    });
  }

  flush(): Promise<void> {
    return this.lock.run(async () => {
      this.check();
      await this.file.syncData().catch((e: unknown) => {
        throw ioError("flush", this.name, e);
      });
    });
  }

  size(): Promise<number> {
    return this.lock.run(async () => {
      this.check();
      const st = await this.file.stat().catch((e: unknown) => {
        throw ioError("stat", this.name, e);
      });
      return st.size;
    });
  }

  truncate(size: number): Promise<void> {
    return this.lock.run(async () => {
      this.check();
      await this.file.truncate(size).catch((e: unknown) => {
        throw ioError("truncate", this.name, e);
      });
    });
  }

  /** Bytes the file occupies on disk (for `info`'s `actual-size`); the length where Deno cannot say. */
  allocatedSize(): Promise<number> {
    return this.lock.run(async () => {
      this.check();
      const st = await this.file.stat().catch((e: unknown) => {
        throw ioError("stat", this.name, e);
      });
      return st.blocks === null ? st.size : st.blocks * 512;
    });
  }

  close(): Promise<void> {
    return this.lock.run(async () => {
      if (this.closed) return;
      this.closed = true;
      try {
        this.file.close();
      } catch (e) {
        throw ioError("close", this.name, e);
      }
    });
  }
}
