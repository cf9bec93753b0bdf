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
    res.messages.push(`ERROR cannot repair: ${inst.writeBlocker}`);
  }
  // owner.get(d) = guest block using data block d. A map, not an array: its size is bounded by
  // the block map held in memory (hence by the file), not by the header's block count.
  const owner = new Map<number, number>();
  const dups: number[] = [];
  for (let i = 0; i < inst.bmap.length && i < blocks; i++) {
    const e = inst.bmap[i];
    if (e >= VDI_DISCARDED) continue;
    if (e >= blocks) {
      res.corruptions++;
      res.messages.push(`${fixAll && canWrite ? "Repairing" : "ERROR"}: block index ${i} too large, is ${e}`);
      if (fixAll && canWrite) {
        await setEntry(inst, i, VDI_UNALLOCATED);
        res.corruptionsFixed++;
      }
      continue;
    }
    const prior = owner.get(e);
    if (prior !== undefined) {
      res.corruptions++;
      res.messages.push(`${fixAll && canWrite ? "Repairing" : "ERROR"}: block index ${prior} also used by ${i}`);
      dups.push(i);
    } else {
      owner.set(e, i);
    }
  }
  let maxUsed = -1;
  for (const d of owner.keys()) if (d > maxUsed) maxUsed = d;
  // Duplicates get a copy of the shared block at the end of the data area.
  if (fixAll && canWrite && dups.length) {
    let next = Math.max(inst.nextIndex, maxUsed + 1);
    for (const i of dups) {
      if (next >= blocks) {
        res.checkErrors++;
        res.messages.push(`ERROR no free data block to copy block ${i} into`);
        break;
      }
      const src = h.offsetData + inst.bmap[i] * bs;
      const data = await readCluster(inst, src, bs);
      await inst.file.write(h.offsetData + next * bs, data);
      await setAllocated(inst, Math.max(inst.header.blocksAllocated, next + 1));
      await setEntry(inst, i, next);
      owner.set(next, i);
      maxUsed = Math.max(maxUsed, next);
      next++;
      res.corruptionsFixed++;
    }
  }

  let used = owner.size;
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
    res.messages.push(`${fixAll && canWrite ? "Repairing" : "ERROR"}: allocated blocks mismatch, is ${used}, should be ${allocated}`);
    if (fixAll && canWrite) {
      // Count every block in use first (the header then never undercounts the map), then
      // compact: move the last blocks into the unused slots (copy first, then repoint the
      // entry, so a crash leaves at worst a leaked copy) and lower the count.
      if (maxUsed + 1 > allocated) await setAllocated(inst, maxUsed + 1);
      const usedDesc = [...owner.keys()].sort((a, b) => b - a);
      let hole = 0;
      for (const d of usedDesc) {
        while (hole < d && owner.has(hole)) hole++;
        if (hole >= d) break;
        const guest = owner.get(d)!;
        const data = await readCluster(inst, h.offsetData + d * bs, bs);
        await inst.file.write(h.offsetData + hole * bs, data);
        await inst.file.flush();
        await setEntry(inst, guest, hole);
        owner.set(hole, guest);
        owner.delete(d);
      }
      await inst.file.flush();
      used = owner.size;
      await setAllocated(inst, used);
      res.corruptionsFixed++;
      maxUsed = used - 1;
    }
  }
  if (tailLeak > 0) {
    res.leaks += tailLeak;
    res.messages.push(`${repair && canWrite ? "Repairing" : "ERROR"}: space leaked at the end of the image ${fileSize - countedEnd}`);
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
