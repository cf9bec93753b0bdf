/**
 * One open Parallels image: catalog lookups, cluster allocation (reusing freed clusters, as
 * QEMU 8 does), discard, and the in-use flag.
 *
 * Order of writes for a new cluster: the file is extended to hold the whole cluster, the engine
 * writes the guest data, then the catalog entry is written. A crash leaves at worst a leaked
 * cluster at the end of the file (and the in-use flag set, which the next read-write open
 * repairs, as QEMU does).
 * @module
 */
import type { CheckResult, FormatInfo, FormatInstance, RepairMode } from "../../core/format.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import { CorruptImageError, ImageError } from "../../errors.js";
import type { Kernel } from "../../kernel/kernel.js";
import { checkParallels } from "./check.js";
import { PARALLELS_HEADER_SIZE, PARALLELS_INUSE_OFFSET, PARALLELS_INUSE_OPEN } from "./layout.js";
import { batOffset, type ParallelsState } from "./state.js";

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

const ZERO_CHUNK = new Uint8Array(1 << 20);

/** Writes `length` zero bytes at `at` from a shared buffer (no allocation sized by `length`). */
export async function writeZeros(file: ParallelsState["file"], at: number, length: number): Promise<void> {
  for (let pos = 0; pos < length; pos += ZERO_CHUNK.length) {
    await file.write(at + pos, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, length - pos)));
  }
}

/** What rebuilding the host-cluster map found wrong. */
export interface ParallelsUsageProblems {
  /** BAT indexes whose cluster another entry (or the extension) already uses. */
  duplicates: number[];
  /** BAT indexes whose cluster lies before the data area or past the end of the file. */
  outside: number[];
}

/** The {@link FormatInstance} of Parallels. */
export class ParallelsInstance implements FormatInstance {
  readonly format = "parallels";
  readonly size: number;
  /**
   * Sectors: writes need no read-modify-write of whole clusters. A new cluster's other sectors
   * read as zeros (the file is extended, or a reused cluster is zeroed first), which is what an
   * unallocated cluster reads as — and cluster sizes up to 2 GiB cost no cluster-sized buffers.
   */
  readonly allocationUnit = 512;
  readonly state: ParallelsState;
  readonly readOnly: boolean;
  private readonly kernel: Kernel;
  /** Bit i: host cluster at dataStart + i × clusterSize is in use (LSB first). */
  private used = new Uint8Array(0);
  /** Host clusters the bitmap covers. */
  private usedCount = 0;
  /** End of the last cluster in use, kept current by allocations (see {@link dataEnd}). */
  private end = 0;

  constructor(state: ParallelsState, readOnly: boolean, kernel: Kernel) {
    this.state = state;
    this.size = state.size;
    this.readOnly = readOnly;
    this.kernel = kernel;
  }

  private hostIndex(off: number): number {
    return Math.floor((off - this.state.dataStart) / this.state.clusterSize);
  }

  private ensureUsed(count: number): void {
    if (count <= this.usedCount) return;
    const bytes = Math.ceil(count / 8);
    if (bytes > this.used.length) {
      const next = new Uint8Array(Math.max(bytes, this.used.length * 2));
      next.set(this.used);
      this.used = next;
    }
    this.usedCount = count;
  }

  private isUsed(i: number): boolean {
    return i < this.usedCount && (this.used[i >>> 3] & (1 << (i & 7))) !== 0;
  }

  private setUsed(i: number, on: boolean): void {
    this.ensureUsed(i + 1);
    if (on) this.used[i >>> 3] |= 1 << (i & 7);
    else this.used[i >>> 3] &= ~(1 << (i & 7));
  }

  /**
   * Rebuilds the map of host clusters in use from the extension and the catalog; reports
   * entries that share a cluster or lie outside the data area and the file.
   */
  rebuildUsage(fileSize: number): ParallelsUsageProblems {
    const s = this.state;
    const cs = s.clusterSize;
    this.used = new Uint8Array(0);
    this.usedCount = 0;
    this.ensureUsed(Math.max(0, Math.ceil((fileSize - s.dataStart) / cs)));
    const problems: ParallelsUsageProblems = { duplicates: [], outside: [] };
    for (const off of s.extension?.clusters ?? []) {
      if (off >= s.dataStart && off + cs <= fileSize) this.markRange(off, cs);
    }
    for (let i = 0; i < s.bat.length; i++) {
      if (s.bat[i] === 0) continue;
      const off = batOffset(s, i);
      if (off < s.dataStart || off + cs > fileSize) {
        problems.outside.push(i);
        continue;
      }
      if (!this.markRange(off, cs)) problems.duplicates.push(i);
    }
    this.end = this.dataEnd();
    return problems;
  }

  /** Marks the host clusters `[off, off+len)` touches; false when one was already in use. */
  private markRange(off: number, len: number): boolean {
    const first = this.hostIndex(off);
    const last = this.hostIndex(off + len - 1);
    let fresh = true;
    for (let i = first; i <= last; i++) {
      if (this.isUsed(i)) fresh = false;
      this.setUsed(i, true);
    }
    return fresh;
  }

  /** End of the last cluster in use (catalog or extension), at least the data area start. */
  dataEnd(): number {
    const s = this.state;
    let end = s.dataStart;
    for (let i = 0; i < s.bat.length; i++) {
      if (s.bat[i] !== 0) end = Math.max(end, batOffset(s, i) + s.clusterSize);
    }
    for (const off of s.extension?.clusters ?? []) end = Math.max(end, off + s.clusterSize);
    return end;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    const s = this.state;
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const cs = s.clusterSize;
    const end = Math.min(this.size, offset + length);
    let idx = Math.floor(offset / cs);
    let stop = (idx + 1) * cs;
    const entry = idx < s.bat.length ? s.bat[idx] : 0;
    if (entry === 0) {
      while (stop < end && (idx + 1 >= s.bat.length || s.bat[idx + 1] === 0)) {
        // Past the catalog everything reads as zeros: jump to the end.
        if (idx + 1 >= s.bat.length) return { kind: "zero", length: end - offset };
        idx++;
        stop += cs;
      }
      return { kind: "zero", length: Math.min(stop, end) - offset };
    }
    const host = batOffset(s, idx);
    let expect = entry + cs / 512 / s.offMultiplier;
    while (stop < end && idx + 1 < s.bat.length && s.bat[idx + 1] === expect) {
      idx++;
      stop += cs;
      expect += cs / 512 / s.offMultiplier;
    }
    return { kind: "data", length: Math.min(stop, end) - offset, file: s.file, fileOffset: host + (offset % cs) };
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    const s = this.state;
    const cs = s.clusterSize;
    const idx = Math.floor(offset / cs);
    const inCluster = offset - idx * cs;
    if (idx >= s.bat.length) {
      throw new CorruptImageError(
        `Cannot write parallels image: guest offset ${offset} lies past the catalog of ${s.bat.length} clusters`,
        { format: "parallels", structure: "catalog" },
      );
    }
    let want = 1;
    while (want * cs < inCluster + length && idx + want < s.bat.length && s.bat[idx + want] === 0) want++;
    // Reuse the first run of free clusters inside the data area, else append.
    const fileSize = await s.file.size();
    const tail = Math.max(0, Math.ceil((Math.max(fileSize, this.end) - s.dataStart) / cs));
    this.ensureUsed(tail);
    const free = this.kernel.nextClearBit(this.used, 0, this.usedCount, false);
    let hostIndex: number;
    let count: number;
    if (free < this.usedCount) {
      hostIndex = free;
      const nextUsed = this.kernel.nextSetBit(this.used, free, this.usedCount, false);
      count = Math.min(want, nextUsed - free);
    } else {
      hostIndex = this.usedCount;
      count = want;
    }
    const host = s.dataStart + hostIndex * cs;
    const unit = s.offMultiplier * 512;
    if (host % unit !== 0 || (host + (count - 1) * cs) / unit > 0xffffffff) {
      throw new ImageError("ERR_IMAGE_FULL", `Cannot write parallels image: host offset ${host} is unaligned or too large for the catalog`, {
        format: "parallels",
      });
    }
    const hostEnd = host + count * cs;
    const len = Math.min(length, count * cs - inCluster);
    // The sectors of the new clusters the engine will not write must read as zeros.
    if (host < fileSize) {
      await writeZeros(s.file, host, inCluster);
      await writeZeros(s.file, host + inCluster + len, Math.min(hostEnd, fileSize) - (host + inCluster + len));
    }
    if (fileSize < hostEnd) await s.file.truncate(hostEnd);
    // A reused cluster still holds a discarded cluster's bytes: its new data must be on disk
    // before the catalog entry, or a volatile cache could keep the entry alone and expose
    // them. (Appended clusters read zeros without their data; reuse follows only discards.)
    const reused = host < fileSize;
    return {
      mapping: { kind: "data", length: len, file: s.file, fileOffset: host + inCluster },
      commit: async () => {
        if (reused) await s.file.flush();
        const entries = new Uint8Array(count * 4);
        const dv = new DataView(entries.buffer);
        for (let i = 0; i < count; i++) dv.setUint32(i * 4, (host + i * cs) / unit, true);
        await s.file.write(PARALLELS_HEADER_SIZE + idx * 4, entries);
        for (let i = 0; i < count; i++) {
          s.bat[idx + i] = (host + i * cs) / unit;
          this.setUsed(hostIndex + i, true);
        }
        this.end = Math.max(this.end, hostEnd);
      },
    };
  }

  async discard(offset: number, length: number): Promise<void> {
    const s = this.state;
    const cs = s.clusterSize;
    // Only clusters wholly inside the range (the last one may end at the disk's end).
    const first = Math.ceil(offset / cs);
    const stop = offset + length >= this.size ? Math.ceil(this.size / cs) : Math.floor((offset + length) / cs);
    const end = Math.min(s.bat.length, stop);
    const freed: number[] = [];
    for (let i = first; i < end; i++) {
      if (s.bat[i] === 0) continue;
      await s.file.write(PARALLELS_HEADER_SIZE + i * 4, u32le(0));
      freed.push(this.hostIndex(batOffset(s, i)));
      s.bat[i] = 0;
    }
    if (freed.length === 0) return;
    // The cleared entries must be on disk before their clusters can be reused.
    await s.file.flush();
    for (const h of freed) this.setUsed(h, false);
  }

  async zeroRange(offset: number, length: number): Promise<number> {
    // The format has no zero flag: an unallocated cluster reads as zeros (QEMU does the same).
    const cs = this.state.clusterSize;
    if (offset % cs !== 0) return 0;
    const whole = offset + length === this.size ? length : Math.floor(length / cs) * cs;
    if (whole <= 0) return 0;
    await this.discard(offset, whole);
    return whole;
  }

  /**
   * The write session starts: the in-use flag is set (durably) before anything changes, so a
   * crash from here on leaves an image the next read-write open repairs. It stays set until
   * close (flushes do not clear it).
   */
  async beginWrites(): Promise<void> {
    if (this.state.header.inuse === PARALLELS_INUSE_OPEN) return;
    await this.setInuse(PARALLELS_INUSE_OPEN);
    await this.state.file.flush();
  }

  /** Writes `inuse`. */
  async setInuse(value: number): Promise<void> {
    await this.state.file.write(PARALLELS_INUSE_OFFSET, u32le(value));
    this.state.header = { ...this.state.header, inuse: value };
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.state.file.flush();
  }

  async check(repair?: RepairMode): Promise<CheckResult> {
    // A repair changes the image: under the in-use flag, as any change.
    if (repair) await this.beginWrites();
    return checkParallels(this, repair);
  }

  async info(): Promise<FormatInfo> {
    const s = this.state;
    const data: Record<string, unknown> = {
      magic: s.v1 ? "WithoutFreeSpace" : "WithouFreSpacExt",
      "cluster-size": s.clusterSize,
      "catalog-entries": s.bat.length,
    };
    if (s.extension) {
      data["format-extension"] = {
        bitmaps: s.extension.bitmaps.map((b) => ({ id: b.id, granularity: b.granularity * 512 })),
        ...(s.extension.unknownFeatures.length ? { "unknown-features": s.extension.unknownFeatures } : {}),
        ...(s.extension.problem ? { problem: s.extension.problem } : {}),
      };
    }
    // qemu-img 7.2 reports no cluster size for parallels; vdisk does (it is the discard unit).
    return { clusterSize: s.clusterSize, dirty: s.unclean, formatSpecific: { type: "parallels", data } };
  }

  async close(): Promise<void> {
    if (this.readOnly) return;
    const s = this.state;
    const restore = s.inuseAtOpen === PARALLELS_INUSE_OPEN ? 0 : s.inuseAtOpen;
    await this.setInuse(restore);
    // Drop space past the last cluster in use, as QEMU does on close.
    const end = this.dataEnd();
    if ((await s.file.size()) > end) await s.file.truncate(end);
    await s.file.flush();
  }
}
