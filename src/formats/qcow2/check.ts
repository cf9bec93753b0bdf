/**
 * qcow2 consistency check and repair: rebuilds the expected refcount of every host cluster
 * from the header, L1/L2 tables (active and snapshots), compressed ranges, the snapshot
 * table, bitmaps and the refcount structure itself, compares with the stored refcounts and
 * checks the COPIED flags. Totals follow `qemu-img check --output=json`.
 *
 * Repair `leaks` lowers leaked refcounts in place. Repair `all` writes a whole new refcount
 * structure past the end of everything in use and switches the header to it in one write,
 * so a crash during repair leaves the old, still valid structure in place.
 * @module
 */
import { pushCheckMessage, pushCheckMessages } from "../../core/check-messages.js";
import type { CheckResult, RepairMode } from "../../core/format.js";
import { LimitExceededError, formatBytes, isImageError } from "../../errors.js";
import { readZeroPadded } from "../../io/helpers.js";
import { hex } from "./errors.js";
import type { Qcow2Instance } from "./instance.js";
import {
  QCOW2_AUTOCLEAR_BITMAPS,
  QCOW2_COMPRESSED_SECTOR,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DIRTY,
  QCOW2_L1_RESERVED_HI,
  QCOW2_L1_RESERVED_LO,
  QCOW2_OFLAG_COMPRESSED_HI,
  QCOW2_OFLAG_COPIED_HI,
  QCOW2_OFLAG_ZERO_LO,
  qcow2DecodeCompressed,
  qcow2EntryOffset,
  qcow2OffsetHi,
  qcow2OffsetLo,
} from "./layout.js";
import { qcow2GetRefcount, qcow2SetRefcount } from "./refcounts.js";

/** Largest number of host clusters a check tracks (a 32-bit count each). */
const MAX_TRACKED_CLUSTERS = 1 << 27;

const TWO32 = 4294967296;

interface Tally {
  res: CheckResult;
  /** Expected refcount per host cluster. */
  expected: Uint32Array;
  nbClusters: number;
  rebuild: boolean;
  /** Some structure or data cluster lies past the end of the file (a crash lost its write). */
  pastEof: boolean;
  fileSize: number;
  /** Where the file should end at least: a cluster that starts inside the file ends past it. */
  shortEnd: number;
  shortCount: number;
}

/** Notes a cluster-sized structure that starts inside the file but ends past it (too short a file). */
function checkShort(t: Tally, offset: number, bytes: number, what: string): void {
  if (offset >= t.fileSize || offset + bytes <= t.fileSize) return;
  t.res.corruptions++;
  pushCheckMessage(t.res.messages, `ERROR ${what} at ${hex(offset)} ends past the end of the file (${t.fileSize} bytes): the file is too short`);
  t.shortEnd = Math.max(t.shortEnd, offset + bytes);
  t.shortCount++;
}

function newResult(): CheckResult {
  return { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
}

/** Adds one reference to every cluster touched by `[offset, offset+size)`. */
function inc(t: Tally, cs: number, offset: number, size: number, what: string): void {
  if (size <= 0) return;
  const first = Math.floor(offset / cs);
  const last = Math.floor((offset + size - 1) / cs);
  for (let c = first; c <= last; c++) {
    if (c >= t.nbClusters) {
      t.res.corruptions++;
      pushCheckMessage(t.res.messages, `ERROR ${what} at ${hex(c * cs)} is beyond the end of the file`);
      t.pastEof = true;
      continue;
    }
    t.expected[c]++;
  }
}

async function readTable(inst: Qcow2Instance, t: Tally, offset: number, bytes: number, what: string): Promise<Uint8Array | undefined> {
  checkShort(t, offset, bytes, what);
  if (offset + bytes > t.nbClusters * inst.clusterSize) {
    t.res.corruptions++;
    pushCheckMessage(t.res.messages, `ERROR ${what} at ${hex(offset)} extends past the end of the file`);
    t.pastEof = true;
    return undefined;
  }
  try {
    return await readZeroPadded(inst.file, offset, bytes);
  } catch (e) {
    t.res.checkErrors++;
    pushCheckMessage(t.res.messages, `ERROR reading ${what} at ${hex(offset)}: ${(e as Error).message}`);
    return undefined;
  }
}

async function checkL2(inst: Qcow2Instance, t: Tally, l2off: number, frag: boolean): Promise<void> {
  const cs = inst.clusterSize;
  const table = await readTable(inst, t, l2off, cs, "L2 table");
  if (!table) return;
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const eb = inst.map.entryBytes;
  const n = inst.map.l2Entries;
  let nextContiguous = 0;
  const res = t.res;
  for (let i = 0; i < n; i++) {
    const hi = dv.getUint32(i * eb);
    const lo = dv.getUint32(i * eb + 4);
    if (hi & QCOW2_OFLAG_COMPRESSED_HI) {
      if (hi & QCOW2_OFLAG_COPIED_HI) {
        res.corruptions++;
        pushCheckMessage(res.messages, `ERROR: L2 entry ${i} of the table at ${hex(l2off)}: copied flag must never be set for compressed clusters`);
      }
      const d = qcow2DecodeCompressed(hi & ~QCOW2_OFLAG_COPIED_HI, lo, inst.clusterBits);
      const start = d.hostOffset - (d.hostOffset % QCOW2_COMPRESSED_SECTOR);
      inc(t, cs, start, d.hostLength + (d.hostOffset - start), "compressed cluster");
      if (frag) {
        res.allocatedClusters = (res.allocatedClusters ?? 0) + 1;
        res.compressedClusters = (res.compressedClusters ?? 0) + 1;
        res.fragmentedClusters = (res.fragmentedClusters ?? 0) + 1;
      }
      continue;
    }
    const off = qcow2EntryOffset(hi, lo);
    const external = inst.dataFile !== undefined;
    // Unallocated or plain zero (with a data file, offset 0 with COPIED is guest cluster 0).
    if (off === 0 && !(external && hi & QCOW2_OFLAG_COPIED_HI)) continue;
    if (inst.extendedL2) {
      const bmHi = dv.getUint32(i * eb + 8);
      const bmLo = dv.getUint32(i * eb + 12);
      if ((bmHi & bmLo) !== 0) {
        res.corruptions++;
        pushCheckMessage(res.messages, `ERROR: L2 entry ${i} of the table at ${hex(l2off)}: invalid subcluster bitmap ${hex(bmHi * TWO32 + bmLo)}`);
      }
    } else if ((lo & QCOW2_OFLAG_ZERO_LO) && inst.header.version < 3) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR: L2 entry ${i} of the table at ${hex(l2off)}: zero flag in a version 2 image`);
    }
    if (frag) {
      res.allocatedClusters = (res.allocatedClusters ?? 0) + 1;
      if (nextContiguous && off !== nextContiguous) res.fragmentedClusters = (res.fragmentedClusters ?? 0) + 1;
      nextContiguous = off + cs;
    }
    // Clusters of an external data file are not refcounted.
    if (!external) {
      inc(t, cs, off, cs, "data cluster");
      // With extended L2, qemu writes only the allocated subclusters: the file may end after
      // the last of them, inside the cluster (qemu-img check accepts that).
      let needed = cs;
      if (inst.extendedL2) {
        const allocBits = dv.getUint32(i * eb + 12);
        needed = allocBits === 0 ? 0 : (32 - Math.clz32(allocBits)) * (cs / 32);
      }
      if (needed > 0) checkShort(t, off, needed, "data cluster");
    }
    if (off % cs !== 0) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR offset=${hex(off)}: Cluster is not properly aligned; L2 entry corrupted.`);
    }
  }
}

async function checkL1(inst: Qcow2Instance, t: Tally, l1off: number, l1Size: number, frag: boolean): Promise<void> {
  const cs = inst.clusterSize;
  inc(t, cs, l1off, l1Size * 8, "L1 table");
  if (l1Size === 0) return;
  const l1 = await readTable(inst, t, l1off, l1Size * 8, "L1 table");
  if (!l1) return;
  const dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
  for (let i = 0; i < l1Size; i++) {
    const hi = dv.getUint32(i * 8);
    const lo = dv.getUint32(i * 8 + 4);
    const off = qcow2EntryOffset(hi, lo);
    if (off === 0) continue;
    if ((hi & QCOW2_L1_RESERVED_HI) || (lo & QCOW2_L1_RESERVED_LO)) {
      t.res.corruptions++;
      pushCheckMessage(t.res.messages, `ERROR L1 entry ${i} at ${hex(l1off + i * 8)} has reserved bits set`);
    }
    inc(t, cs, off, cs, "L2 table");
    if (off % cs !== 0) {
      t.res.corruptions++;
      pushCheckMessage(t.res.messages, `ERROR l2_offset=${hex(off)}: Table is not cluster aligned; L1 entry corrupted`);
      continue;
    }
    await checkL2(inst, t, off, frag);
  }
}

async function checkBitmaps(inst: Qcow2Instance, t: Tally): Promise<void> {
  const ext = inst.header.bitmaps;
  // With the autoclear bit cleared (a writable open by vdisk, which keeps no bitmaps) the
  // extension is inconsistent and its clusters count as leaked, as qemu-img sees them.
  if (!ext || inst.bitmaps.length === 0 || !(inst.header.autoclearFeatures & QCOW2_AUTOCLEAR_BITMAPS)) return;
  const cs = inst.clusterSize;
  inc(t, cs, ext.directoryOffset, ext.directorySize, "bitmap directory");
  for (const b of inst.bitmaps) {
    inc(t, cs, b.tableOffset, b.tableSize * 8, "bitmap table");
    const table = await readTable(inst, t, b.tableOffset, b.tableSize * 8, "bitmap table");
    if (!table) continue;
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    for (let i = 0; i < b.tableSize; i++) {
      const off = qcow2EntryOffset(dv.getUint32(i * 8), dv.getUint32(i * 8 + 4));
      if (off !== 0) inc(t, cs, off, cs, "bitmap data");
    }
  }
}

/** Computes expected refcounts; `refcountStructures` false leaves out the refcount table and blocks. */
async function calculate(inst: Qcow2Instance, res: CheckResult, refcountStructures: boolean): Promise<Tally> {
  const cs = inst.clusterSize;
  const fileSize = await inst.file.size();
  const nbClusters = Math.ceil(fileSize / cs);
  if (nbClusters > MAX_TRACKED_CLUSTERS) {
    throw new LimitExceededError(`Cannot check qcow2 image: ${formatBytes(fileSize)} file has more than ${MAX_TRACKED_CLUSTERS} clusters`, { format: "qcow2" });
  }
  const t: Tally = {
    res, expected: new Uint32Array(nbClusters), nbClusters, rebuild: false, pastEof: false, fileSize, shortEnd: 0, shortCount: 0,
  };
  res.totalClusters = Math.ceil(inst.size / cs);
  res.allocatedClusters = 0;
  res.fragmentedClusters = 0;
  res.compressedClusters = 0;
  inc(t, cs, 0, cs, "header");
  await checkL1(inst, t, inst.header.l1TableOffset, inst.header.l1Size, true);
  for (const s of inst.snapshots) await checkL1(inst, t, s.l1TableOffset, s.l1Size, false);
  if (inst.snapshots.length > 0) inc(t, cs, inst.header.snapshotsOffset, inst.snapshotTableBytes, "snapshot table");
  await checkBitmaps(inst, t);
  if (!refcountStructures) return t;
  const rc = inst.refcounts;
  inc(t, cs, rc.location.offset, rc.location.clusters * cs, "refcount table");
  for (let i = 0; i < rc.tableEntries; i++) {
    let off: number;
    try {
      off = rc.blockOffset(i);
    } catch (e) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR refcount block ${i}: ${(e as Error).message}`);
      t.rebuild = true;
      continue;
    }
    if (off === 0) continue;
    const c = off / cs;
    if (c >= nbClusters) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR refcount block ${i} is outside image`);
      t.rebuild = true;
      continue;
    }
    checkShort(t, off, cs, `refcount block ${i}`);
    t.expected[c]++;
    if (t.expected[c] !== 1) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR refcount block ${i} refcount=${t.expected[c]}`);
      t.rebuild = true;
    }
  }
  return t;
}

/** Stored refcounts of clusters `[0, n)`, block by block (a corrupt table entry reads as 0). */
async function storedRefcounts(inst: Qcow2Instance, n: number): Promise<Uint32Array> {
  const rc = inst.refcounts;
  // Counts above 2^32-1 (64-bit refcounts) are clamped: no image holds that many references.
  const out = new Uint32Array(n);
  const per = 2 ** rc.blockBits;
  const cs = inst.clusterSize;
  for (let bi = 0; bi * per < n; bi++) {
    let off = 0;
    try {
      off = rc.blockOffset(bi);
    } catch {
      continue;
    }
    if (off === 0 || off / cs >= n) continue;
    const block = await readZeroPadded(inst.file, off, cs);
    const end = Math.min(n, (bi + 1) * per);
    for (let c = bi * per; c < end; c++) out[c] = Math.min(0xffffffff, qcow2GetRefcount(block, c - bi * per, rc.order));
  }
  return out;
}

interface Comparison {
  highest: number;
  /** Clusters whose stored refcount exceeds the references (counted; found again on repair). */
  leaked: number;
  anyError: boolean;
}

function compare(t: Tally, stored: Uint32Array): Comparison {
  const res = t.res;
  let highest = 0;
  let leaked = 0;
  let anyError = false;
  for (let i = 0; i < t.nbClusters; i++) {
    const r1 = stored[i];
    const r2 = t.expected[i];
    if (r1 > 0 || r2 > 0) highest = i;
    if (r1 === r2) continue;
    if (r1 < r2) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR cluster ${i} refcount=${r1} reference=${r2}`);
      anyError = true;
      if (r1 === 0) t.rebuild = true;
    } else {
      res.leaks++;
      leaked++;
      pushCheckMessage(res.messages, `Leaked cluster ${i} refcount=${r1} reference=${r2}`);
    }
  }
  return { highest, leaked, anyError };
}

/** COPIED flags of the active L1/L2 tables against the stored refcounts; fixes them when asked. */
async function checkCopied(inst: Qcow2Instance, res: CheckResult, stored: Uint32Array, fix: boolean): Promise<void> {
  const cs = inst.clusterSize;
  const map = inst.map;
  // Only the active table carries meaningful COPIED flags (a snapshot opened for reading does not).
  if (map.l1TableOffset !== inst.header.l1TableOffset) return;
  const l1 = map.l1;
  const l1v = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
  const rcOf = (off: number) => (off / cs < stored.length ? stored[off / cs] : 0);
  for (let i = 0; i < map.l1Size; i++) {
    const hi = l1v.getUint32(i * 8);
    const lo = l1v.getUint32(i * 8 + 4);
    const l2off = qcow2EntryOffset(hi, lo);
    if (l2off === 0 || l2off % cs !== 0) continue;
    const copied = (hi & QCOW2_OFLAG_COPIED_HI) !== 0;
    const rc = rcOf(l2off);
    if ((rc === 1) !== copied) {
      pushCheckMessage(res.messages, `${fix ? "Repairing" : "ERROR"} OFLAG_COPIED L2 cluster: l1_index=${i} refcount=${rc}`);
      if (fix) {
        l1v.setUint32(i * 8, ((rc === 1 ? QCOW2_OFLAG_COPIED_HI : 0) | qcow2OffsetHi(l2off)) >>> 0);
        l1v.setUint32(i * 8 + 4, qcow2OffsetLo(l2off));
        await inst.file.write(map.l1TableOffset + i * 8, l1.subarray(i * 8, i * 8 + 8));
        res.corruptionsFixed++;
      } else {
        res.corruptions++;
      }
    }
    if (l2off + cs > stored.length * cs || inst.dataFile) continue;
    const table = await readZeroPadded(inst.file, l2off, cs);
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    let dirty = false;
    for (let j = 0; j < map.l2Entries; j++) {
      const p = j * map.entryBytes;
      const ehi = dv.getUint32(p);
      const elo = dv.getUint32(p + 4);
      if (ehi & QCOW2_OFLAG_COMPRESSED_HI) continue;
      const off = qcow2EntryOffset(ehi, elo);
      if (off === 0 || off % cs !== 0) continue;
      const r = rcOf(off);
      if ((r === 1) !== ((ehi & QCOW2_OFLAG_COPIED_HI) !== 0)) {
        pushCheckMessage(res.messages, `${fix ? "Repairing" : "ERROR"} OFLAG_COPIED data cluster: l2_entry=${hex(ehi * TWO32 + elo)} refcount=${r}`);
        if (fix) {
          dv.setUint32(p, r === 1 ? (ehi | QCOW2_OFLAG_COPIED_HI) >>> 0 : (ehi & ~QCOW2_OFLAG_COPIED_HI) >>> 0);
          dirty = true;
          res.corruptionsFixed++;
        } else {
          res.corruptions++;
        }
      }
    }
    if (dirty) await inst.file.write(l2off, table);
  }
}

/**
 * Clears the active L1 entries whose L2 table and the L2 entries whose data cluster lie past
 * the end of the file. A volatile disk cache can keep such an entry and lose the write that
 * would have extended the file; that write was never flushed, so the guest range it mapped
 * goes back to unallocated. The refcounts are rebuilt afterwards.
 */
async function dropPastEof(inst: Qcow2Instance, res: CheckResult): Promise<void> {
  const cs = inst.clusterSize;
  const map = inst.map;
  if (map.l1TableOffset !== inst.header.l1TableOffset) return;
  const nbClusters = Math.ceil((await inst.file.size()) / cs);
  const past = (offset: number, bytes: number) => Math.floor((offset + Math.max(bytes, 1) - 1) / cs) >= nbClusters;
  const l1v = new DataView(map.l1.buffer, map.l1.byteOffset, map.l1.byteLength);
  for (let i = 0; i < map.l1Size; i++) {
    const hi = l1v.getUint32(i * 8);
    const l2off = qcow2EntryOffset(hi, l1v.getUint32(i * 8 + 4));
    if (l2off === 0 || l2off % cs !== 0) continue;
    if (past(l2off, cs)) {
      pushCheckMessage(res.messages, `Repairing L1 entry ${i}: its L2 table at ${hex(l2off)} is past the end of the file`);
      await map.clearL1Entry(i);
      continue;
    }
    if (inst.dataFile) continue;
    const table = await readZeroPadded(inst.file, l2off, cs);
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    let dirty = false;
    for (let j = 0; j < map.l2Entries; j++) {
      const p = j * map.entryBytes;
      const ehi = dv.getUint32(p);
      const elo = dv.getUint32(p + 4);
      let gone: boolean;
      if (ehi & QCOW2_OFLAG_COMPRESSED_HI) {
        const d = qcow2DecodeCompressed(ehi & ~QCOW2_OFLAG_COPIED_HI, elo, inst.clusterBits);
        const start = d.hostOffset - (d.hostOffset % QCOW2_COMPRESSED_SECTOR);
        gone = past(start, d.hostLength + (d.hostOffset - start));
      } else {
        const off = qcow2EntryOffset(ehi, elo);
        gone = off !== 0 && off % cs === 0 && past(off, cs);
      }
      if (!gone) continue;
      pushCheckMessage(res.messages, `Repairing L2 entry ${j} of the table at ${hex(l2off)}: its data is past the end of the file`);
      table.fill(0, p, p + map.entryBytes);
      dirty = true;
    }
    if (dirty) await inst.file.write(l2off, table);
  }
  map.l2Cache.clear();
  await inst.file.flush();
}

/**
 * Writes a complete refcount structure for `expected` (which must leave out the old refcount
 * structure) after `start`, then points the header at it.
 */
async function rebuild(inst: Qcow2Instance, expected: Uint32Array, start: number): Promise<void> {
  const rc = inst.refcounts;
  const cs = inst.clusterSize;
  const per = 2 ** rc.blockBits;
  const cpt = cs / 8;
  let lastUsed = -1;
  for (let c = expected.length - 1; c >= 0; c--) if (expected[c] > 0) {
    lastUsed = c;
    break;
  }
  const usedBlock = (bi: number) => {
    const end = Math.min(expected.length, (bi + 1) * per);
    for (let c = bi * per; c < end; c++) if (expected[c] > 0) return true;
    return false;
  };
  let nb = 0;
  let nt = 0;
  let blocks: number[] = [];
  for (let round = 0; round < 64; round++) {
    const end = start + nb + nt;
    const lastBlock = Math.floor((Math.max(end, lastUsed + 1) - 1) / per);
    blocks = [];
    for (let bi = 0; bi <= lastBlock; bi++) {
      const inNew = bi * per < end && (bi + 1) * per > start;
      if (inNew || usedBlock(bi)) blocks.push(bi);
    }
    const t = Math.ceil(((blocks.length ? blocks[blocks.length - 1] : 0) + 1) / cpt);
    if (blocks.length === nb && t === nt) break;
    nb = blocks.length;
    nt = t;
  }
  const newEnd = start + nb + nt;
  const full = new Uint32Array(Math.max(expected.length, newEnd));
  full.set(expected);
  for (let c = start; c < newEnd; c++) full[c] = 1;
  const table = new Uint8Array(nt * cs);
  const tdv = new DataView(table.buffer);
  for (let k = 0; k < blocks.length; k++) {
    const bi = blocks[k];
    const boff = (start + k) * cs;
    const block = new Uint8Array(cs);
    const end = Math.min(full.length, (bi + 1) * per);
    for (let c = bi * per; c < end; c++) {
      if (full[c]) qcow2SetRefcount(block, c - bi * per, rc.order, Math.min(full[c], rc.max));
    }
    await inst.file.write(boff, block);
    tdv.setUint32(bi * 8, Math.floor(boff / TWO32));
    tdv.setUint32(bi * 8 + 4, boff % TWO32);
  }
  const toff = (start + nb) * cs;
  await inst.file.write(toff, table);
  await inst.file.flush();
  const loc = { offset: toff, clusters: nt };
  const hdr = new Uint8Array(12);
  const hv = new DataView(hdr.buffer);
  hv.setUint32(0, Math.floor(toff / TWO32));
  hv.setUint32(4, toff % TWO32);
  hv.setUint32(8, nt);
  await inst.file.write(48, hdr);
  await inst.file.flush();
  inst.header.refcountTableOffset = toff;
  inst.header.refcountTableClusters = nt;
  rc.replaceTable(table, loc, newEnd * cs);
  inst.resetAfterRepair();
}

async function runCheck(inst: Qcow2Instance, res: CheckResult): Promise<{ t: Tally; stored: Uint32Array; cmp: Comparison }> {
  const t = await calculate(inst, res, true);
  const stored = await storedRefcounts(inst, t.nbClusters);
  const cmp = compare(t, stored);
  res.imageEndOffset = (cmp.highest + 1) * inst.clusterSize;
  return { t, stored, cmp };
}

/** The qcow2 `check` (see the module comment). */
export async function checkQcow2(inst: Qcow2Instance, repair?: RepairMode): Promise<CheckResult> {
  const res = newResult();
  try {
    const first = await runCheck(inst, res);
    if (!repair) {
      await checkCopied(inst, res, first.stored, false);
      return res;
    }
    // A file that ends inside a cluster in use is extended with zeros (what the cluster's
    // unwritten tail reads as anyway), then checked again.
    if (repair === "all" && first.t.shortEnd > 0) {
      const from = first.t.fileSize;
      await inst.file.truncate(first.t.shortEnd);
      await inst.file.flush();
      const again = await checkQcow2(inst, repair);
      again.corruptionsFixed += first.t.shortCount;
      again.messages = [`Repairing the file is too short: extended from ${from} to ${first.t.shortEnd} bytes`, ...again.messages];
      return again;
    }
    // Leaks alone are lowered in place; anything else gets a fresh refcount structure.
    const needRebuild = repair === "all" && (first.t.rebuild || first.cmp.anyError || first.t.pastEof);
    if (needRebuild) {
      const before = { corruptions: res.corruptions, leaks: res.leaks };
      if (first.t.pastEof) await dropPastEof(inst, res);
      const clean = await calculate(inst, newResult(), false);
      const start = Math.max(first.t.nbClusters, first.cmp.highest + 1);
      await rebuild(inst, clean.expected, start);
      const after = newResult();
      const second = await runCheck(inst, after);
      await checkCopied(inst, after, second.stored, true);
      const final = newResult();
      await runCheck(inst, final).then((r) => checkCopied(inst, final, r.stored, false));
      final.corruptionsFixed = before.corruptions - final.corruptions + after.corruptionsFixed;
      final.leaksFixed = Math.max(0, before.leaks - final.leaks);
      const messages = [...res.messages];
      pushCheckMessages(messages, after.messages);
      pushCheckMessages(messages, final.messages);
      final.messages = messages;
      await finishRepair(inst, final);
      return final;
    }
    if (first.cmp.leaked > 0) {
      for (let c = 0; c < first.t.nbClusters; c++) {
        if (first.stored[c] <= first.t.expected[c]) continue;
        const delta = first.t.expected[c] - first.stored[c];
        await inst.refcounts.adjust(c, 1, delta);
        res.leaksFixed++;
        res.leaks--;
      }
      // The COPIED check below reads the stored refcounts from the file.
      await inst.refcounts.writeBack();
    }
    await checkCopied(inst, res, await storedRefcounts(inst, first.t.nbClusters), repair === "all");
    await finishRepair(inst, res);
    return res;
  } catch (e) {
    if (isImageError(e) && e.code === "ERR_LIMIT_EXCEEDED") throw e;
    res.checkErrors++;
    pushCheckMessage(res.messages, `ERROR: ${(e as Error).message}`);
    return res;
  }
}

async function finishRepair(inst: Qcow2Instance, res: CheckResult): Promise<void> {
  if (res.corruptions > 0) return;
  const h = inst.header;
  if (h.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) await inst.clearCorrupt();
  if (h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) {
    h.incompatibleFeatures &= ~QCOW2_INCOMPAT_DIRTY;
    await inst.writeIncompatible();
  }
  await inst.file.flush();
}
