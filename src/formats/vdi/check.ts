/**
 * `check` for VDI with qemu-img's semantics: every allocated block map entry must name a data
 * block below `blocksInImage`, no two entries may name the same block, and `blocksAllocated`
 * must count the blocks in use.
 *
 * The result carries counts only (no statistics, no image end offset), as qemu-img's does.
 *
 * A `blocksAllocated` that differs from the number of blocks the map uses is a corruption, with
 * qemu-img's message. Where vdisk differs from qemu-img (which cannot repair VDI at all): file
 * space past the last block in use is a leak, which `-r leaks` truncates; `-r all` also drops
 * entries past the image, gives duplicated blocks their own copy, raises an undercounting
 * header, and for an overcounting one moves the last blocks into the unused slots and lowers
 * the count.
 * @module
 */
import { CHECK_MESSAGE_LIMIT, pushCheckMessage } from "../../core/check-messages.js";
import type { CheckResult, RepairMode } from "../../core/format.js";
import { readExact } from "../../io/helpers.js";
import type { VdiInstance } from "./instance.js";
import { VDI_BLOCKS_ALLOCATED_OFFSET, VDI_DISCARDED, VDI_UNALLOCATED } from "./layout.js";

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

async function setEntry(inst: VdiInstance, index: number, value: number): Promise<void> {
  await inst.file.write(inst.header.offsetBmap + index * 4, u32(value));
  inst.bmap[index] = value;
}

async function setAllocated(inst: VdiInstance, value: number): Promise<void> {
  await inst.file.write(VDI_BLOCKS_ALLOCATED_OFFSET, u32(value));
  inst.header = { ...inst.header, blocksAllocated: value };
}

/** Checks (and with `repair`, fixes) an open VDI. */
export async function checkVdi(inst: VdiInstance, repair?: RepairMode): Promise<CheckResult> {
  const res: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const h = inst.header;
  const bs = h.blockSize;
  const blocks = h.blocksInImage;
  const fixAll = repair === "all";
  const canWrite = !!repair && !inst.writeBlocker;
  if (repair && inst.writeBlocker) {
    res.checkErrors++;
    pushCheckMessage(res.messages, `ERROR cannot repair: ${inst.writeBlocker}`);
  }
  // Which data blocks are in use: one bit per block of the header's count (at most 64 MiB at
  // the format's limit), never an object or a word per entry, so a map of millions of
  // entries, or entries naming blocks far apart, check in bounded memory.
  const n = Math.min(inst.bmap.length, blocks);
  let inUse = usedBlocks(inst.bmap, n, blocks);
  let dups = 0;
  // Duplicate lines name the first user of the block; found in a second pass, and only for
  // the lines kept.
  const priorWanted = new Map<number, number>();
  const priorLines: Array<[number, number, number]> = []; // [message index, block, guest]
  const seen = new Uint8Array(inUse.length);
  for (let i = 0; i < n; i++) {
    const e = inst.bmap[i];
    if (e >= VDI_DISCARDED) continue;
    if (e >= blocks) {
      res.corruptions++;
      const tag = fixAll && canWrite ? "Repairing" : "ERROR";
      pushCheckMessage(res.messages, () => `${tag}: block index ${i} too large, is ${e}`);
      if (fixAll && canWrite) {
        await setEntry(inst, i, VDI_UNALLOCATED);
        res.corruptionsFixed++;
      }
      continue;
    }
    if (testAndSet(seen, e)) {
      res.corruptions++;
      dups++;
      const at = res.messages.length;
      pushCheckMessage(res.messages, "");
      if (at < CHECK_MESSAGE_LIMIT) {
        priorLines.push([at, e, i]);
        priorWanted.set(e, -1);
      }
    }
  }
  if (priorLines.length > 0) {
    for (let i = 0; i < n; i++) {
      const e = inst.bmap[i];
      if (priorWanted.get(e) === -1) priorWanted.set(e, i);
    }
    for (const [at, e, i] of priorLines) {
      const tag = fixAll && canWrite ? "Repairing" : "ERROR";
      res.messages[at] = `${tag}: block index ${priorWanted.get(e)} also used by ${i}`;
    }
  }
  let maxUsed = highestSet(inUse);
  // Duplicates get a copy of the shared block at the end of the data area.
  if (fixAll && canWrite && dups > 0) {
    let next = Math.max(inst.nextIndex, maxUsed + 1);
    seen.fill(0);
    for (let i = 0; i < n; i++) {
      const e = inst.bmap[i];
      if (e >= VDI_DISCARDED || e >= blocks || !testAndSet(seen, e)) continue;
      if (next >= blocks) {
        res.checkErrors++;
        pushCheckMessage(res.messages, `ERROR no free data block to copy block ${i} into`);
        break;
      }
      const data = await readCluster(inst, h.offsetData + e * bs, bs);
      await inst.file.write(h.offsetData + next * bs, data);
      await setAllocated(inst, Math.max(inst.header.blocksAllocated, next + 1));
      await setEntry(inst, i, next);
      next++;
      res.corruptionsFixed++;
    }
    inUse = usedBlocks(inst.bmap, n, blocks);
    maxUsed = highestSet(inUse);
  }

  let used = 0;
  for (let k = 0; k < inUse.length; k++) used += popcount8(inUse[k]);
  const allocated = inst.header.blocksAllocated;
  // File space past the last counted block (measured before any compaction moves the end).
  const fileSize = await inst.file.size();
  // Blocks past the header's count that the map uses are not leaked space.
  const effective = Math.max(allocated, maxUsed + 1);
  const countedEnd = h.offsetData + effective * bs;
  const tailLeak = fileSize > countedEnd && effective < blocks ? Math.ceil((fileSize - countedEnd) / bs) : 0;
  if (used !== allocated || maxUsed + 1 > allocated) {
    // qemu-img's wording: "is" the count found in the map, "should be" the header's.
    res.corruptions++;
    pushCheckMessage(res.messages, `${fixAll && canWrite ? "Repairing" : "ERROR"}: allocated blocks mismatch, is ${used}, should be ${allocated}`);
    if (fixAll && canWrite) {
      // Count every block in use first (the header then never undercounts the map), then
      // compact: move the last blocks into the unused slots (copy first, then repoint the
      // entry, so a crash leaves at worst a leaked copy) and lower the count. Guests sorted
      // by the data block they use, largest first, move into the lowest holes.
      if (maxUsed + 1 > allocated) await setAllocated(inst, maxUsed + 1);
      const guests = guestsByBlock(inst.bmap, n, blocks);
      let hole = 0;
      for (let k = guests.length - 1; k >= 0; k--) {
        const guest = guests[k];
        const d = inst.bmap[guest];
        while (hole < d && isSet(inUse, hole)) hole++;
        if (hole >= d) break;
        const data = await readCluster(inst, h.offsetData + d * bs, bs);
        await inst.file.write(h.offsetData + hole * bs, data);
        await inst.file.flush();
        await setEntry(inst, guest, hole);
        inUse[hole >> 3] |= 1 << (hole & 7);
        inUse[d >> 3] &= ~(1 << (d & 7));
      }
      await inst.file.flush();
      await setAllocated(inst, used);
      res.corruptionsFixed++;
      maxUsed = used - 1;
    }
  }
  if (tailLeak > 0) {
    res.leaks += tailLeak;
    pushCheckMessage(res.messages, `${repair && canWrite ? "Repairing" : "ERROR"}: space leaked at the end of the image ${fileSize - countedEnd}`);
    if (repair && canWrite) res.leaksFixed += tailLeak;
  }
  const end = h.offsetData + inst.header.blocksAllocated * bs;
  if (repair && canWrite && fileSize > end) await inst.file.truncate(end);
  if (repair && canWrite) {
    await inst.file.flush();
    inst.nextIndex = inst.computeNextIndex();
  }
  res.corruptions -= res.corruptionsFixed;
  res.leaks -= res.leaksFixed;

  // Like qemu-img, VDI reports no allocation statistics or image end offset.
  return res;
}

async function readCluster(inst: VdiInstance, at: number, bs: number): Promise<Uint8Array> {
  const size = await inst.file.size();
  const buf = new Uint8Array(bs);
  if (at < size) buf.set(await readExact(inst.file, at, Math.min(bs, size - at), "data block", "vdi"));
  return buf;
}


/** One bit per data block below `blocks`: set when one of the first `n` entries names it. */
function usedBlocks(bmap: Uint32Array, n: number, blocks: number): Uint8Array {
  const bits = new Uint8Array(Math.ceil(blocks / 8));
  for (let i = 0; i < n; i++) {
    const e = bmap[i];
    if (e < blocks) bits[e >> 3] |= 1 << (e & 7);
  }
  return bits;
}

/** Sets bit `i`; returns whether it was set already. */
function testAndSet(bits: Uint8Array, i: number): boolean {
  const was = (bits[i >> 3] & (1 << (i & 7))) !== 0;
  bits[i >> 3] |= 1 << (i & 7);
  return was;
}

function isSet(bits: Uint8Array, i: number): boolean {
  return (bits[i >> 3] & (1 << (i & 7))) !== 0;
}

/** The highest set bit, or -1. */
function highestSet(bits: Uint8Array): number {
  for (let k = bits.length - 1; k >= 0; k--) if (bits[k]) return k * 8 + 31 - Math.clz32(bits[k]);
  return -1;
}

function popcount8(b: number): number {
  let c = 0;
  for (let v = b; v; v &= v - 1) c++;
  return c;
}

/** Guest blocks (of the first `n`) whose entry names a data block, sorted by that block. */
function guestsByBlock(bmap: Uint32Array, n: number, blocks: number): Uint32Array {
  let count = 0;
  for (let i = 0; i < n; i++) if (bmap[i] < blocks) count++;
  const out = new Uint32Array(count);
  for (let i = 0, k = 0; i < n; i++) if (bmap[i] < blocks) out[k++] = i;
  return out.sort((a, b) => bmap[a] - bmap[b]);
}
