/**
 * `check` for VHD. qemu-img has no check for vpc; this one reports what a VHD can get wrong:
 * damaged or missing footer copies, a bad dynamic header checksum, overlapping blocks, and
 * space no block uses (leaks, in whole blocks). Repair rewrites the footers and header checksum
 * (`all`) and truncates an unused tail (`leaks`).
 * @module
 */
import { pushCheckMessage } from "../../core/check-messages.js";
import type { CheckResult, RepairMode } from "../../core/format.js";
import { readZeroPadded } from "../../io/helpers.js";
import type { VhdState } from "./instance.js";
import {
  VHD_BAT_UNALLOCATED,
  VHD_DYNAMIC_CHECKSUM_OFFSET,
  VHD_FOOTER_SIZE,
  encodeVhdDynamicHeader,
  encodeVhdFooter,
  vhdChecksum,
} from "./layout.js";

function emptyResult(): CheckResult {
  return { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
}

/** Checks (and with `repair`, fixes) the VHD described by `state`. */
export async function checkVhd(state: VhdState, repair?: RepairMode): Promise<CheckResult> {
  const res = emptyResult();
  const file = state.file;
  const fileSize = await file.size();
  const dyn = state.dynamic;
  const bm = state.blockMap;
  if (!dyn || !bm) {
    if (fileSize < state.size + VHD_FOOTER_SIZE) {
      res.corruptions++;
      pushCheckMessage(res.messages, `ERROR the file (${fileSize} bytes) is shorter than the disk plus its footer (${state.size + VHD_FOOTER_SIZE})`);
    }
    res.imageEndOffset = fileSize;
    return res;
  }
  const fixAll = repair === "all";
  const footerBytes = encodeVhdFooter(state.footer);

  // Footer copies: offset 0 and the end of the file must both hold the footer.
  const head = await readZeroPadded(file, 0, VHD_FOOTER_SIZE);
  const tail = fileSize >= VHD_FOOTER_SIZE ? await readZeroPadded(file, fileSize - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE) : new Uint8Array(0);
  const headOk = equal(head, footerBytes);
  const tailOk = equal(tail, footerBytes);
  if (!headOk) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${fixAll ? "Repairing" : "ERROR"} the footer copy at offset 0 differs from the footer`);
  }
  // The dynamic header's checksum.
  const rawHeader = await readZeroPadded(file, dyn.headerOffset, 1024);
  const headerOk = vhdChecksum(rawHeader, VHD_DYNAMIC_CHECKSUM_OFFSET) === dyn.header.checksum;
  if (!headerOk) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${fixAll ? "Repairing" : "ERROR"} the dynamic header checksum is incorrect`);
  }

  // Blocks must not overlap one another.
  const span = bm.bitmapSize + bm.blockSize;
  // Block numbers sorted by file offset, in a typed array: no object per BAT entry.
  const bat = bm.bat;
  let count = 0;
  for (let i = 0; i < bat.length; i++) if (bat[i] !== VHD_BAT_UNALLOCATED) count++;
  const byOffset = new Uint32Array(count);
  for (let i = 0, k = 0; i < bat.length; i++) if (bat[i] !== VHD_BAT_UNALLOCATED) byOffset[k++] = i;
  byOffset.sort((a, b) => bat[a] - bat[b] || a - b);
  for (let k = 1; k < count; k++) {
    const cur = byOffset[k];
    const prev = byOffset[k - 1];
    if (bat[cur] * 512 < bat[prev] * 512 + span) {
      res.corruptions++;
      pushCheckMessage(res.messages, () => `ERROR block ${cur} at offset ${bat[cur] * 512} overlaps block ${prev}`);
    }
  }

  // BAT entries past the end of the file (read as unallocated since the open).
  for (const i of dyn.pastEof) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${fixAll ? "Repairing" : "ERROR"} block ${i} extends past the end of the file: its BAT entry is cleared`);
  }

  // Space after the last block that nothing uses (before the end footer).
  const used = bm.freeOffset;
  const footerAt = tailOk ? fileSize - VHD_FOOTER_SIZE : fileSize;
  const unused = Math.max(0, footerAt - used);
  const leakedBlocks = Math.floor(unused / span);
  if (!tailOk) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${fixAll ? "Repairing" : "ERROR"} the footer at the end of the file is missing or differs`);
  }
  if (leakedBlocks > 0) {
    res.leaks += leakedBlocks;
    pushCheckMessage(res.messages, `${repair ? "Repairing" : "ERROR"} ${unused} bytes after the last block are not used by any block`);
  }

  if (repair) {
    if (fixAll && !headerOk) {
      await file.write(dyn.headerOffset, encodeVhdDynamicHeader(dyn.header));
      res.corruptionsFixed++;
    }
    if (fixAll && dyn.pastEof.length > 0) {
      const entry = new Uint8Array(4).fill(0xff);
      for (const i of dyn.pastEof) await file.write(dyn.batOffset + i * 4, entry);
      res.corruptionsFixed += dyn.pastEof.length;
      dyn.pastEof.length = 0;
    }
    if (fixAll && !headOk) {
      await file.write(0, footerBytes);
      res.corruptionsFixed++;
    }
    // Rewrite the end footer right after the last block (crash-safe: the footer lands first,
    // then the file is cut behind it).
    if ((fixAll && !tailOk) || leakedBlocks > 0) {
      await file.write(used, footerBytes);
      await file.truncate(used + VHD_FOOTER_SIZE);
      if (!tailOk && fixAll) res.corruptionsFixed++;
      if (leakedBlocks > 0) res.leaksFixed += leakedBlocks;
    }
    await file.flush();
    await bm.refresh();
    state.problems.length = 0;
  }
  res.corruptions -= res.corruptionsFixed;
  res.leaks -= res.leaksFixed;

  let fragmented = 0;
  let allocatedCount = 0;
  let prev = -1;
  const needed = Math.ceil(state.size / bm.blockSize);
  for (let i = 0; i < needed; i++) {
    const e = bm.bat[i];
    if (e === VHD_BAT_UNALLOCATED) continue;
    allocatedCount++;
    if (prev >= 0 && e * 512 !== prev + span) fragmented++;
    prev = e * 512;
  }
  res.totalClusters = needed;
  res.allocatedClusters = allocatedCount;
  res.fragmentedClusters = fragmented;
  res.compressedClusters = 0;
  res.imageEndOffset = repair && (leakedBlocks > 0 || (fixAll && !tailOk)) ? used + VHD_FOOTER_SIZE : fileSize;
  return res;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
