/**
 * Where metadata lives, so that a "data" cluster that points into metadata (a corrupt L2
 * entry) is never written in place: fixed structures by range, L2 tables and refcount blocks
 * through a set rebuilt whenever the L1 or refcount table changes.
 * @module
 */
import type { Qcow2ClusterMap } from "./cluster-map.js";
import type { Qcow2Refcounts } from "./refcounts.js";

/** What the overlap check looks at. */
export interface Qcow2OverlapOptions {
  map: Qcow2ClusterMap;
  refcounts: Qcow2Refcounts;
  snapshotsOffset: number;
  /** Bytes of the snapshot table (0 without snapshots). */
  snapshotTableBytes: number;
}

/** The metadata overlap check of an open image. */
export class Qcow2MetadataOverlap {
  constructor(private readonly o: Qcow2OverlapOptions) {}

  /**
   * True when host range `[off, off+len)` overlaps metadata whose place is known without I/O
   * (header cluster, active L1, refcount table, snapshot table) or an active L2 table or refcount
   * block. Such a "data" cluster is never written in place.
   */
  overlaps(off: number, len: number): boolean {
    const end = off + len;
        const hit = (s: number, n: number) => n > 0 && off < s + n && s < end;
    if (
      hit(0, this.o.map.clusterSize) ||
      hit(this.o.map.l1TableOffset, this.o.map.l1Size * 8) ||
      hit(this.o.refcounts.location.offset, this.o.refcounts.location.clusters * this.o.map.clusterSize) ||
      hit(this.o.snapshotsOffset, this.o.snapshotTableBytes)
    ) return true;
    const set = this.tableClusters();
    const cs = this.o.map.clusterSize;
    for (let c = Math.floor(off / cs); c * cs < end; c++) if (set.has(c)) return true;
    return false;
  }

  private tableSet?: { l1: number; rc: number; set: Set<number> };

  /** Host clusters holding active L2 tables and refcount blocks (rebuilt when they change). */
  private tableClusters(): Set<number> {
    const t = this.tableSet;
    if (t && t.l1 === this.o.map.version && t.rc === this.o.refcounts.version) return t.set;
    const set = new Set<number>();
    const cs = this.o.map.clusterSize;
    for (let i = 0; i < this.o.map.l1Size; i++) {
      try {
        const o = this.o.map.l2Offset(i);
        if (o) set.add(o / cs);
      } catch {
        // A corrupt entry is reported where it is used.
      }
    }
    for (let i = 0; i < this.o.refcounts.tableEntries; i++) {
      try {
        const o = this.o.refcounts.blockOffset(i);
        if (o) set.add(o / cs);
      } catch {
        // idem
      }
    }
    this.tableSet = { l1: this.o.map.version, rc: this.o.refcounts.version, set };
    return set;
  }
}
