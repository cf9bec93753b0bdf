/**
 * Reading L2 entries: standard and extended entries turned into engine mappings, with runs of
 * alike entries answered in one mapping (the kernel's table run scan for standard entries).
 * @module
 */
import type { Mapping, SpecialMapping } from "../../core/mapping.js";
import type { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import type { Kernel } from "../../kernel/kernel.js";
import type { Qcow2ClusterMap, Qcow2L2Entry } from "./cluster-map.js";
import { hex, qcow2CorruptIo } from "./errors.js";
import {
  QCOW2_EXTL2_ALL_ALLOC,
  QCOW2_L2_RESERVED_HI,
  QCOW2_L2_RESERVED_LO,
  QCOW2_OFLAG_COMPRESSED_HI,
  QCOW2_OFLAG_COPIED_HI,
  QCOW2_OFLAG_ZERO_LO,
  QCOW2_SUBCLUSTERS,
  qcow2DecodeCompressed,
  qcow2EntryOffset,
} from "./layout.js";

/** Token of a compressed mapping (`special`, what `compressed`). */
export interface Qcow2CompressedToken {
  hostOffset: number;
  hostLength: number;
  /** Guest offset of the cluster's first byte. */
  guestStart: number;
}

/** What the mapper needs from the image. */
export interface Qcow2MapperOptions {
  map: Qcow2ClusterMap;
  kernel: Kernel;
  file: IoBackend;
  version: number;
  subclusterSize: number;
  /**
   * Guest data lives in an external data file (host offset = guest offset, offset 0 is valid
   * when COPIED is set, no refcounts, no overlap with metadata).
   */
  dataFile?: IoBackend;
  /** True when a host range overlaps metadata (such data is never written in place). */
  overlaps(offset: number, length: number): boolean;
}

const ALL = QCOW2_EXTL2_ALL_ALLOC;

/** Turns L2 entries into mappings. Stateless apart from its options. */
export class Qcow2Mapper {
  constructor(private readonly o: Qcow2MapperOptions) {}

  /** A compressed cluster as a `special` mapping. */
  special(e: Qcow2L2Entry, guestStart: number, inCl: number, max: number, l2off: number, l2i: number): SpecialMapping {
    const d = qcow2DecodeCompressed(e.hi, e.lo, this.o.map.clusterBits);
    if (!Number.isSafeInteger(d.hostOffset + d.hostLength)) {
      throw this.corruptEntry(l2off, l2i, `points at compressed data at ${hex(d.hostOffset)}, past 2^53`);
    }
    const token: Qcow2CompressedToken = { hostOffset: d.hostOffset, hostLength: d.hostLength, guestStart };
    return { kind: "special", what: "compressed", length: Math.min(max, this.o.map.clusterSize - inCl), fileOffset: d.hostOffset, token };
  }

  /** The error for a corrupt L2 entry. */
  corruptEntry(l2off: number, l2i: number, what: string): CorruptImageError {
    return qcow2CorruptIo("read", `L2 entry ${l2i} of the table at ${hex(l2off)} ${what}`, "L2 table", l2off + l2i * this.o.map.entryBytes);
  }

  /** Maps from entry `l2i` of a standard L2 table (at most `max` bytes from `offset`). */
  standard(table: Uint8Array, l2i: number, inCl: number, max: number, offset: number, l2off: number): Mapping {
    const cs = this.o.map.clusterSize;
    const e = this.o.map.entry(table, l2i);
    if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) return this.special(e, offset - inCl, inCl, max, l2off, l2i);
    if ((e.hi & QCOW2_L2_RESERVED_HI) !== 0 || (e.lo & QCOW2_L2_RESERVED_LO) !== 0) {
      throw this.corruptEntry(l2off, l2i, "has reserved bits set");
    }
    const want = Math.min(this.o.map.l2Entries - l2i, Math.ceil((inCl + max) / cs));
    const run = this.o.kernel.tableRunLength(table, l2i, l2i + want, 8, 0xff000000, 0x1ff, 0x00ffffff, 0xfffffe00, cs);
    const len = Math.min(max, run * cs - inCl);
    const off = qcow2EntryOffset(e.hi, e.lo);
    if (e.lo & QCOW2_OFLAG_ZERO_LO) {
      if (this.o.version < 3) throw this.corruptEntry(l2off, l2i, "has the zero flag in a version 2 image");
      return { kind: "zero", length: len, allocated: true };
    }
    if (off === 0 && !(this.o.dataFile && e.hi & QCOW2_OFLAG_COPIED_HI)) return { kind: "backing", length: len };
    if (off % cs !== 0) throw this.corruptEntry(l2off, l2i, `points at unaligned offset ${hex(off)}`);
    if (!Number.isSafeInteger(off + cs)) throw this.corruptEntry(l2off, l2i, `points at ${hex(off)}, past 2^53`);
    return this.data(e, off, inCl, len);
  }

  /** Maps from entry `l2i` of an extended L2 table (subcluster runs, then whole alike clusters). */
  extended(table: Uint8Array, l2i: number, inCl: number, max: number, offset: number, l2off: number): Mapping {
    const cs = this.o.map.clusterSize;
    const sc = this.o.subclusterSize;
    const map = this.o.map;
    const e = map.entry(table, l2i);
    if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) return this.special(e, offset - inCl, inCl, max, l2off, l2i);
    this.validateExtended(e, l2off, l2i);
    const off = qcow2EntryOffset(e.hi, e.lo);
    const kindOf = (j: number): number => ((e.bmLo >>> j) & 1 ? 0 : (e.bmHi >>> j) & 1 ? 1 : 2); // 0 data, 1 zero, 2 backing
    const first = Math.floor(inCl / sc);
    const k = kindOf(first);
    let j = first + 1;
    while (j < QCOW2_SUBCLUSTERS && kindOf(j) === k) j++;
    let len = j * sc - inCl;
    if (j === QCOW2_SUBCLUSTERS) {
      let next = l2i + 1;
      let expected = off + cs;
      while (len < max && next < map.l2Entries) {
        const n = map.entry(table, next);
        if (n.hi & QCOW2_OFLAG_COMPRESSED_HI) break;
        if ((n.hi & QCOW2_L2_RESERVED_HI) !== 0 || (n.lo & 0x1ff) !== 0) break;
        if (k === 0) {
          if (qcow2EntryOffset(n.hi, n.lo) !== expected || (n.hi & QCOW2_OFLAG_COPIED_HI) !== (e.hi & QCOW2_OFLAG_COPIED_HI)) break;
          if (n.bmLo >>> 0 !== ALL || n.bmHi !== 0) break;
          expected += cs;
        } else if (k === 1) {
          if (n.bmHi >>> 0 !== ALL || n.bmLo !== 0) break;
        } else if (n.bmLo !== 0 || n.bmHi !== 0) {
          break;
        }
        len += cs;
        next++;
      }
    }
    len = Math.min(len, max);
    if (k === 1) return { kind: "zero", length: len, allocated: true };
    if (k === 2) return { kind: "backing", length: len };
    return this.data(e, off, inCl, len);
  }

  private data(e: Qcow2L2Entry, off: number, inCl: number, len: number): Mapping {
    if (this.o.dataFile) return { kind: "data", length: len, file: this.o.dataFile, fileOffset: off + inCl };
    const shared = (e.hi & QCOW2_OFLAG_COPIED_HI) === 0 || this.o.overlaps(off, len + inCl);
    return { kind: "data", length: len, file: this.o.file, fileOffset: off + inCl, shared };
  }

  /** Throws on an extended entry whose bits contradict each other. */
  validateExtended(e: Qcow2L2Entry, l2off: number, l2i: number): void {
    if ((e.hi & QCOW2_L2_RESERVED_HI) !== 0 || (e.lo & 0x1ff) !== 0) throw this.corruptEntry(l2off, l2i, "has reserved bits set");
    if ((e.bmLo & e.bmHi) !== 0) throw this.corruptEntry(l2off, l2i, "marks a subcluster both allocated and zero");
    const off = qcow2EntryOffset(e.hi, e.lo);
    if (off === 0 && e.bmLo !== 0 && !(this.o.dataFile && e.hi & QCOW2_OFLAG_COPIED_HI)) throw this.corruptEntry(l2off, l2i, "has allocated subclusters but no host cluster");
    if (off % this.o.map.clusterSize !== 0) throw this.corruptEntry(l2off, l2i, `points at unaligned offset ${hex(off)}`);
    if (!Number.isSafeInteger(off + this.o.map.clusterSize)) {
      throw this.corruptEntry(l2off, l2i, `points at ${hex(off)}, past 2^53`);
    }
  }
}
