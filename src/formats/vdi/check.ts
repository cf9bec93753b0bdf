/**
 * `check` for VDI with qemu-img's semantics: every allocated block map entry must name a data
 * block below `blocksInImage`, no two entries may name the same block, and `blocksAllocated`
 * must count the blocks in use.
 *
 * The result carries counts only (no statistics, no image end offset), as qemu-img's does.
 *
 * Where vdisk differs from qemu-img (which cannot repair VDI at all): a header that counts
 * more blocks than the map uses, and file space past the last block, are what an interrupted
 * allocation leaves; vdisk reports them as leaks (qemu-img calls the first a corruption).
 * `-r leaks` moves the last blocks into unused slots and truncates; `-r all` also drops entries
 * past the image, gives duplicated blocks their own copy, and fixes an undercounting header.
 * @module
 */
import { pushCheckMessage } from "../../core/check-messages.js";
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
  // owner[d] = guest block using data block d (-1: none). Sized by the highest block a map
  // entry names, so bounded by the header's block count (as the block map itself); no
  // per-entry objects, so a map of millions of entries checks in bounded memory.
  const n = Math.min(inst.bmap.length, blocks);
  let owner = ownerTable(inst.bmap, n, blocks);
  let dups = 0;
  for (let i = 0; i < n; i++) {
    const e = inst.bmap[i];
    if (e >= VDI_DISCARDED) continue;
    if (e >= blocks) {
      res.corruptions++;
      pushCheckMessage(res.messages, () => `${fixAll && canWrite ? "Repairing" : "ERROR"}: block index ${i} too large, is ${e}`);
      if (fixAll && canWrite) {
        await setEntry(inst, i, VDI_UNALLOCATED);
        res.corruptionsFixed++;
      }
      continue;
    }
    const prior = owner[e];
    if (prior !== i) {
      res.corruptions++;
      pushCheckMessage(res.messages, () => `${fixAll && canWrite ? "Repairing" : "ERROR"}: block index ${prior} also used by ${i}`);
      dups++;
    }
  }
  let maxUsed = owner.length - 1;
  // Duplicates get a copy of the shared block at the end of the data area.
  if (fixAll && canWrite && dups > 0) {
    let next = Math.max(inst.nextIndex, maxUsed + 1);
    for (let i = 0; i < n; i++) {
      const e = inst.bmap[i];
      if (e >= VDI_DISCARDED || e >= blocks || owner[e] === i) continue;
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
    owner = ownerTable(inst.bmap, n, blocks);
    maxUsed = owner.length - 1;
  }

  let used = 0;
  for (let d = 0; d < owner.length; d++) if (owner[d] >= 0) used++;
  const allocated = inst.header.blocksAllocated;
  // File space past the last counted block (measured before any compaction moves the end).
  const fileSize = await inst.file.size();
  const countedEnd = h.offsetData + allocated * bs;
  const tailLeak = fileSize > countedEnd && allocated < blocks ? Math.ceil((fileSize - countedEnd) / bs) : 0;
  if (maxUsed + 1 > allocated) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${fixAll && canWrite ? "Repairing" : "ERROR"}: allocated blocks mismatch, is ${used}, should be ${allocated}`);
    if (fixAll && canWrite) {
      await setAllocated(inst, maxUsed + 1);
      res.corruptionsFixed++;
    }
  } else if (used < allocated) {
    const leaked = allocated - used;
    res.leaks += leaked;
    pushCheckMessage(res.messages, `${repair && canWrite ? "Repairing" : "ERROR"}: ${leaked} data blocks are not used by any guest block (allocated blocks mismatch, is ${used}, should be ${allocated})`);
    if (repair && canWrite) {
      // Compact: move the last blocks into the unused slots (copy first, then repoint the entry,
      // so a crash leaves at worst a leaked copy), then shrink the count.
      let hole = 0;
      for (let d = owner.length - 1; d >= 0; d--) {
        if (owner[d] < 0) continue;
        while (hole < d && owner[hole] >= 0) hole++;
        if (hole >= d) break;
        const guest = owner[d];
        const data = await readCluster(inst, h.offsetData + d * bs, bs);
        await inst.file.write(h.offsetData + hole * bs, data);
        await setEntry(inst, guest, hole);
        owner[hole] = guest;
        owner[d] = -1;
      }
      await setAllocated(inst, used);
      res.leaksFixed += leaked;
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


/** owner[d] = first guest block (of the first `n`) whose entry names data block d, else -1. */
function ownerTable(bmap: Uint32Array, n: number, blocks: number): Int32Array {
  let max = -1;
  for (let i = 0; i < n; i++) {
    const e = bmap[i];
    if (e < blocks && e > max) max = e;
  }
  const owner = new Int32Array(max + 1).fill(-1);
  for (let i = 0; i < n; i++) {
    const e = bmap[i];
    if (e < blocks && owner[e] < 0) owner[e] = i;
  }
  return owner;
}
