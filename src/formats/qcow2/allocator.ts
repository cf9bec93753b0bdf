/**
 * Host space for guest data: whole clusters (through the refcounts), byte ranges for
 * compressed streams packed one after another, and release of what an L2 entry referenced.
 * @module
 */
import type { Qcow2L2Entry } from "./cluster-map.js";
import {
  QCOW2_OFLAG_COMPRESSED_HI,
  qcow2DecodeCompressed,
  qcow2EntryOffset,
} from "./layout.js";
import type { Qcow2Refcounts } from "./refcounts.js";

/** Host clusters an entry holds: `[first, first+count)` cluster indices, or undefined. */
export function qcow2EntryClusters(e: Qcow2L2Entry, clusterBits: number): [number, number] | undefined {
  const cs = 2 ** clusterBits;
  if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) {
    const d = qcow2DecodeCompressed(e.hi, e.lo, clusterBits);
    const first = Math.floor(d.hostOffset / cs);
    const last = Math.floor((d.hostOffset + d.hostLength - 1) / cs);
    return [first, last - first + 1];
  }
  const off = qcow2EntryOffset(e.hi, e.lo);
  return off === 0 ? undefined : [off / cs, 1];
}

/** Allocation of host space on top of {@link Qcow2Refcounts}. */
export class Qcow2Allocator {
  /** Byte offset where the next compressed stream may start (inside a cluster we own), or 0. */
  private compressedCursor = 0;

  constructor(
    private readonly refcounts: Qcow2Refcounts,
    private readonly clusterBits: number,
    /** Guest data lives in an external data file: its clusters are not refcounted. */
    private readonly externalData = false,
  ) {}

  /** `n` contiguous fresh clusters (refcount 1). */
  clusters(n: number): Promise<number> {
    return this.refcounts.allocate(n);
  }

  /**
   * Space for a compressed stream of `len` bytes (< one cluster): shares the tail of the last
   * compressed cluster when it fits (that cluster's refcount goes up by one), else takes
   * fresh clusters. Refcounts are written before the offset is returned.
   */
  async compressed(len: number): Promise<number> {
    const cs = 2 ** this.clusterBits;
    const cur = this.compressedCursor;
    if (cur !== 0) {
      const clusterEnd = (Math.floor(cur / cs) + 1) * cs;
      const room = clusterEnd - cur;
      const cluster = Math.floor(cur / cs);
      const canShare = (await this.refcounts.get(cluster)) < this.refcounts.max && (await this.refcounts.get(cluster)) > 0;
      if (canShare && len <= room) {
        await this.refcounts.adjust(cluster, 1, 1);
        this.compressedCursor = cur + len === clusterEnd ? 0 : cur + len;
        return cur;
      }
      if (canShare && this.refcounts.nextFreeOffset === clusterEnd) {
        const extra = Math.ceil((len - room) / cs);
        const got = await this.refcounts.allocate(extra);
        if (got === clusterEnd) {
          await this.refcounts.adjust(cluster, 1, 1);
          this.compressedCursor = (cur + len) % cs === 0 ? 0 : cur + len;
          return cur;
        }
        // Not contiguous after all: give the clusters back (never referenced).
        await this.refcounts.adjust(got / cs, extra, -1);
      }
    }
    const n = Math.ceil(len / cs);
    const at = await this.refcounts.allocate(n);
    this.compressedCursor = len % cs === 0 ? 0 : at + len;
    return at;
  }

  /** Forgets the compressed cursor (its cluster was freed or the refcounts rebuilt). */
  resetCompressed(): void {
    this.compressedCursor = 0;
  }

  /**
   * Drops one reference from the host clusters of each entry once the entries are off the disk:
   * the caller has replaced them in a cached L2 table, so the drops are queued
   * ({@link Qcow2Refcounts.freeLater}) and applied after that table is written back. Adjacent
   * clusters are released as one run.
   */
  release(entries: Iterable<Qcow2L2Entry>): void {
    const cs = 2 ** this.clusterBits;
    let runStart = -1;
    let runLen = 0;
    for (const e of entries) {
      if (this.externalData && !(e.hi & QCOW2_OFLAG_COMPRESSED_HI)) continue;
      const c = qcow2EntryClusters(e, this.clusterBits);
      if (!c) continue;
      if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) {
        // A compressed stream's clusters may be shared by neighbours; release them on their own.
        if (runLen > 0) this.refcounts.freeLater(runStart, runLen);
        runLen = 0;
        this.refcounts.freeLater(c[0], c[1]);
        // The cluster the next stream would share may be about to become free: start afresh.
        const cursorCluster = Math.floor(this.compressedCursor / cs);
        if (this.compressedCursor !== 0 && cursorCluster >= c[0] && cursorCluster < c[0] + c[1]) this.compressedCursor = 0;
        continue;
      }
      if (runLen > 0 && c[0] === runStart + runLen) {
        runLen++;
      } else {
        if (runLen > 0) this.refcounts.freeLater(runStart, runLen);
        runStart = c[0];
        runLen = 1;
      }
    }
    if (runLen > 0) this.refcounts.freeLater(runStart, runLen);
  }
}
