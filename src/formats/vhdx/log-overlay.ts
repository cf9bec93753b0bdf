/**
 * A read-only view of an image file with a dirty log replayed in memory: what a read-write
 * replay would have written, without writing it. Used for read-only opens of images whose log
 * was never replayed (qemu refuses those; vdisk reads them consistently).
 * @module
 */
import { ImageError } from "../../errors.js";
import type { IoBackend, IoCapabilities } from "../../io/backend.js";
import { VHDX_LOG_SECTOR_SIZE } from "./layout.js";
import type { VhdxLogReplay } from "./log-replay.js";

/** The file as it reads after the replay. Writes are refused. */
export class VhdxLogOverlayBackend implements IoBackend {
  readonly capabilities: IoCapabilities = { writable: false, sparse: true };
  /** Final contents per 4 KiB sector the log touches; null reads as zeros. */
  private readonly sectors = new Map<number, Uint8Array | null>();

  constructor(
    private readonly inner: IoBackend,
    private readonly replay: VhdxLogReplay,
  ) {
    for (const p of replay.patches) {
      if (p.data) {
        this.sectors.set(p.fileOffset, p.data);
      } else {
        for (let o = 0; o < p.length; o += VHDX_LOG_SECTOR_SIZE) this.sectors.set(p.fileOffset + o, null);
      }
    }
  }

  get name(): string {
    return this.inner.name;
  }

  async size(): Promise<number> {
    return Math.max(await this.inner.size(), this.replay.lastFileOffset);
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const size = await this.size();
    if (offset >= size) return 0;
    const n = Math.min(into.length, size - offset);
    let got = 0;
    while (got < n) {
      const r = await this.inner.read(offset + got, into.subarray(got, n));
      if (r <= 0) break;
      got += r;
    }
    into.fill(0, got, n);
    if (this.sectors.size > 0) {
      const first = Math.floor(offset / VHDX_LOG_SECTOR_SIZE) * VHDX_LOG_SECTOR_SIZE;
      for (let s = first; s < offset + n; s += VHDX_LOG_SECTOR_SIZE) {
        const patch = this.sectors.get(s);
        if (patch === undefined) continue;
        const from = Math.max(s, offset);
        const to = Math.min(s + VHDX_LOG_SECTOR_SIZE, offset + n);
        if (patch === null) into.fill(0, from - offset, to - offset);
        else into.set(patch.subarray(from - s, to - s), from - offset);
      }
    }
    return n;
  }

  private refuse(): never {
    throw new ImageError("ERR_READ_ONLY", `${this.inner.name} is open read-only with its VHDX log replayed in memory`, {
      file: this.inner.name,
      format: "vhdx",
    });
  }

  async write(): Promise<void> {
    this.refuse();
  }

  async truncate(): Promise<void> {
    this.refuse();
  }

  async flush(): Promise<void> {}

  close(): Promise<void> {
    return this.inner.close();
  }
}
