/**
 * Test helpers for VMDK: an in-memory directory of files (descriptor + extents share it, with
 * create and writable opens), and little-endian peeks/pokes into image bytes.
 */
import { ImageError, MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import type { FileOpener, IoBackend, IoCapabilities } from "../../src/io/backend.js";

/** A named file of a {@link MemoryDir}; every open shares the bytes, closing an open is a no-op. */
class SharedFile implements IoBackend {
  readonly capabilities: IoCapabilities;
  constructor(
    readonly name: string,
    private readonly store: MemoryBackend,
    writable: boolean,
  ) {
    this.capabilities = { writable, sparse: true };
  }
  read(offset: number, into: Uint8Array): Promise<number> {
    return this.store.read(offset, into);
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.capabilities.writable) throw new ImageError("ERR_READ_ONLY", `${this.name} is read-only`);
    return this.store.write(offset, data);
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  size(): Promise<number> {
    return this.store.size();
  }
  truncate(size: number): Promise<void> {
    return this.store.truncate(size);
  }
  async close(): Promise<void> {}
}

/** An in-memory directory: files by name, an opener for images that name files. */
export class MemoryDir {
  readonly files = new Map<string, MemoryBackend>();
  /** Names opened through {@link MemoryDir.opener}, with their purpose and mode. */
  readonly opens: Array<{ name: string; purpose: string; writable: boolean; create: boolean }> = [];

  /** The bytes of `name` (a view). */
  bytes(name: string): Uint8Array {
    const f = this.files.get(name);
    if (!f) throw new Error(`no file ${name}`);
    return f.bytes();
  }

  /** Puts `bytes` (copied) into the directory as `name`. */
  put(name: string, bytes: Uint8Array | string): void {
    const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes.slice();
    this.files.set(name, new MemoryBackend(b, { name }));
  }

  /** A backend for `name` (created empty when `create`). */
  open(name: string, writable = true, create = false): IoBackend {
    let f = this.files.get(name);
    if (create || !f) {
      if (!create) throw new ImageError("ERR_IO", `Could not open '${name}': No such file or directory`);
      f = new MemoryBackend(new Uint8Array(0), { name });
      this.files.set(name, f);
    }
    return new SharedFile(name, f, writable);
  }

  /** The opener images in this directory use for extents and backing files. */
  readonly opener: FileOpener = async (req) => {
    this.opens.push({ name: req.name, purpose: req.purpose, writable: req.writable, create: !!req.create });
    return this.open(req.name, req.writable || !!req.create, !!req.create);
  };

  /** Creates a vmdk image `name` here. */
  create(name: string, size: number, options = "", extra: { backingFile?: string } = {}): Promise<BlockDevice> {
    return createImage(this.open(name, true, true), {
      format: "vmdk",
      size,
      options,
      openFile: this.opener,
      backing: "same-dir",
      backingFile: extra.backingFile,
    });
  }

  /** Opens the image `name` here (format probed unless given). */
  openImage(name: string, o: { readOnly?: boolean; warn?: (m: string) => void; format?: string } = {}): Promise<BlockDevice> {
    return openImage(this.open(name, !o.readOnly), {
      format: o.format,
      readOnly: o.readOnly,
      openFile: this.opener,
      backing: "same-dir",
      warn: o.warn,
    });
  }
}

/** Little-endian u32 at `at`. */
export function le32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

/** Little-endian u64 (below 2^53) at `at`. */
export function le64(b: Uint8Array, at: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return dv.getUint32(at + 4, true) * 2 ** 32 + dv.getUint32(at, true);
}

/** Writes `bytes` into `b` at `at` (a "poke" as iotests do). */
export function poke(b: Uint8Array, at: number, bytes: number[]): void {
  b.set(bytes, at);
}

/** The descriptor text embedded in a monolithic sparse file (sector 1 .. first NUL). */
export function embeddedDescriptor(b: Uint8Array): string {
  const off = le64(b, 28) * 512;
  const end = b.indexOf(0, off);
  return new TextDecoder("latin1").decode(b.subarray(off, end < 0 ? undefined : end));
}

/** The GTE of `grain` in a sparse extent, read through the directory at header field `gdField` (56 = GD, 48 = RGD). */
export function gteOf(b: Uint8Array, grain: number, gdField = 56): number {
  const gtes = le32(b, 44);
  const gd = le64(b, gdField) * 512;
  const gt = le32(b, gd + Math.floor(grain / gtes) * 4) * 512;
  return le32(b, gt + (grain % gtes) * 4);
}
