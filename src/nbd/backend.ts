/**
 * {@link NbdBackend}: an NBD export as an {@link IoBackend}, so any image (or raw disk) served
 * over NBD opens like a file.
 * @module
 */
import { ImageError } from "../errors.js";
import type { IoBackend, IoCapabilities } from "../io/backend.js";
import { NbdClient } from "./client.js";
import { parseNbdUrl, type NbdAddress, type NbdConnect } from "./socket.js";

/** Options of {@link NbdBackend.connect}. */
export interface NbdBackendOptions {
  /** Open read-only even when the export is writable. */
  readOnly?: boolean;
}

/**
 * Bytes of one NBD export. Requests larger than the server's payload limit are split, and
 * requests not aligned to its minimum block size are widened (writes then read-modify-write
 * the edge blocks, which is not atomic against other writers of the same blocks).
 */
export class NbdBackend implements IoBackend {
  readonly capabilities: IoCapabilities;

  private constructor(readonly name: string, private readonly client: NbdClient, writable: boolean) {
    this.capabilities = { writable };
  }

  /** Connects to `address` and negotiates `exportName` (`""` is the default export). */
  static async connect(
    connect: NbdConnect,
    address: NbdAddress,
    exportName: string,
    options: NbdBackendOptions = {},
    name = `nbd export '${exportName}'`,
  ): Promise<NbdBackend> {
    const socket = await connect(address);
    const client = await NbdClient.connect(socket, exportName);
    return new NbdBackend(name, client, !options.readOnly && !client.readOnly);
  }

  /** Connects to the export an `nbd://host:port/name` or `nbd+unix:///name?socket=PATH` URL names. */
  static open(connect: NbdConnect, url: string, options: NbdBackendOptions = {}): Promise<NbdBackend> {
    const target = parseNbdUrl(url);
    return NbdBackend.connect(connect, target.address, target.exportName, options, url);
  }

  /** What the server advertised. */
  get exportInfo(): NbdClient["info"] {
    return this.client.info;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const size = this.client.info.size;
    const length = Math.max(0, Math.min(into.length, size - offset));
    await this.each(offset, length, (o, n, pos) => this.readAligned(o, into.subarray(pos, pos + n)));
    return length;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!this.capabilities.writable) throw new ImageError("ERR_READ_ONLY", `${this.name} is read-only`);
    if (offset + data.length > this.client.info.size) {
      throw new ImageError("ERR_IMAGE_FULL", `${this.name}: cannot grow an NBD export past ${this.client.info.size} bytes`);
    }
    await this.each(offset, data.length, (o, n, pos) => this.writeAligned(o, data.subarray(pos, pos + n)));
  }

  flush(): Promise<void> {
    return this.client.flush();
  }

  size(): Promise<number> {
    return Promise.resolve(this.client.info.size);
  }

  truncate(size: number): Promise<void> {
    if (size === this.client.info.size) return Promise.resolve();
    return Promise.reject(new ImageError("ERR_UNSUPPORTED_FEATURE", `${this.name}: an NBD export cannot be resized`));
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /**
   * Runs `fn` over `[offset, offset+length)` in pieces, in parallel. Pieces end at multiples of
   * the largest whole-block payload, so widening a piece to whole blocks never takes it past
   * the payload limit, and two pieces never widen into the same block (no racing edge writes).
   */
  private async each(offset: number, length: number, fn: (o: number, n: number, pos: number) => Promise<void>): Promise<void> {
    const unit = this.client.info.minimumBlockSize;
    const payload = this.client.info.maximumPayload;
    const max = Math.max(unit, payload - (payload % unit));
    const parts: Promise<void>[] = [];
    for (let pos = 0; pos < length;) {
      const boundary = (Math.floor((offset + pos) / max) + 1) * max;
      const n = Math.min(boundary - (offset + pos), length - pos);
      parts.push(fn(offset + pos, n, pos));
      pos += n;
    }
    await Promise.all(parts);
  }

  /** `[offset, offset+length)` widened to whole minimum blocks (clipped at the export's end). */
  private widened(offset: number, length: number): { start: number; end: number; exact: boolean } {
    const unit = this.client.info.minimumBlockSize;
    const start = offset - (offset % unit);
    const end = Math.min(this.client.info.size, Math.ceil((offset + length) / unit) * unit);
    return { start, end, exact: start === offset && end === offset + length };
  }

  private async readAligned(offset: number, into: Uint8Array): Promise<void> {
    const { start, end, exact } = this.widened(offset, into.length);
    if (exact) return this.client.read(offset, into);
    const buf = new Uint8Array(end - start);
    await this.client.read(start, buf);
    into.set(buf.subarray(offset - start, offset - start + into.length));
  }

  private async writeAligned(offset: number, data: Uint8Array): Promise<void> {
    const { start, end, exact } = this.widened(offset, data.length);
    if (exact) return this.client.write(offset, data);
    const buf = new Uint8Array(end - start);
    await this.client.read(start, buf);
    buf.set(data, offset - start);
    await this.client.write(start, buf);
  }
}
