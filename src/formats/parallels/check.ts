/**
 * `check` for Parallels with QEMU's semantics (qemu 8.2 `parallels_co_check`, a superset of
 * 7.2's): the in-use flag, `data_off`, clusters outside the image, space leaked at the end,
 * clusters shared by two catalog entries; then allocation statistics.
 *
 * Where vdisk differs: the clusters of the format extension (dirty bitmaps) count as used, so
 * they are neither reported as leaks nor cut off by a repair (qemu-img 7.2 calls them leaked
 * and `-r` destroys the bitmap); catalog entries pointing into the header or catalog are
 * corruptions (QEMU 8.2 would assert).
 * @module
 */
import { pushCheckMessage } from "../../core/check-messages.js";
import type { CheckResult, RepairMode } from "../../core/format.js";
import { readExact } from "../../io/helpers.js";
import type { ParallelsInstance } from "./instance.js";
import { PARALLELS_DATA_OFF_OFFSET, PARALLELS_HEADER_SIZE } from "./layout.js";
import { batOffset } from "./state.js";

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

/** Checks (and with `repair`, fixes) an open Parallels image. */
export async function checkParallels(inst: ParallelsInstance, repair?: RepairMode): Promise<CheckResult> {
  const s = inst.state;
  const file = s.file;
  const res: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const fixAll = repair === "all";
  const tag = (fix: boolean) => (fix ? "Repairing" : "ERROR");
  const cs = s.clusterSize;

  if (s.unclean) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${tag(fixAll)} image was not closed correctly`);
    if (fixAll) {
      res.corruptionsFixed++;
      s.unclean = false; // the flag itself is reset on close
    }
  }

  if (!s.dataOffOk) {
    res.corruptions++;
    pushCheckMessage(res.messages, `${tag(fixAll)} data_off field has incorrect value`);
    if (fixAll) {
      await file.write(PARALLELS_DATA_OFF_OFFSET, u32le(s.correctDataOff));
      s.header = { ...s.header, dataOff: s.correctDataOff };
      s.dataStart = s.correctDataOff * 512;
      s.dataOffOk = true;
      res.corruptionsFixed++;
    }
  }

  let fileSize = await file.size();
  let usage = inst.rebuildUsage(fileSize);
  for (const i of usage.outside) {
    const off = batOffset(s, i);
    const why = off < s.dataStart ? "points into the header or catalog" : "is outside image";
    res.corruptions++;
    pushCheckMessage(res.messages, `${tag(fixAll)} cluster ${i} ${why}`);
    if (fixAll) {
      await file.write(PARALLELS_HEADER_SIZE + i * 4, u32le(0));
      s.bat[i] = 0;
      res.corruptionsFixed++;
    }
  }
  if (fixAll && usage.outside.length) usage = inst.rebuildUsage(fileSize);

  let imageEnd = inst.dataEnd();
  if (fileSize > imageEnd) {
    const count = Math.ceil((fileSize - imageEnd) / cs);
    res.leaks += count;
    pushCheckMessage(res.messages, `${tag(!!repair)} space leaked at the end of the image ${fileSize - imageEnd}`);
    if (repair) {
      await file.truncate(imageEnd);
      fileSize = imageEnd;
      res.leaksFixed += count;
      usage = inst.rebuildUsage(fileSize);
    }
  }

  // A flag per BAT entry, not a Set: the BAT can hold millions of entries.
  const seenOutside = new Uint8Array(s.bat.length);
  for (const i of usage.outside) seenOutside[i] = 1;
  for (const i of usage.duplicates) {
    if (seenOutside[i]) continue;
    res.corruptions++;
    pushCheckMessage(res.messages, `${tag(fixAll)} duplicate offset in BAT entry ${i}`);
    if (!fixAll) continue;
    // Give the entry its own copy of the shared cluster, appended at the end.
    const host = Math.max(imageEnd, Math.ceil((fileSize - s.dataStart) / cs) * cs + s.dataStart);
    const entry = host / (s.offMultiplier * 512);
    if (!Number.isInteger(entry) || entry > 0xffffffff) {
      res.checkErrors++;
      pushCheckMessage(res.messages, `ERROR cannot place a copy of cluster ${i} at offset ${host}`);
      continue;
    }
    await copyCluster(file, batOffset(s, i), host, cs);
    await file.write(PARALLELS_HEADER_SIZE + i * 4, u32le(entry));
    s.bat[i] = entry;
    imageEnd = host + cs;
    fileSize = Math.max(fileSize, imageEnd);
    res.corruptionsFixed++;
  }
  if (fixAll && usage.duplicates.length) inst.rebuildUsage(fileSize);

  res.corruptions -= res.corruptionsFixed;
  res.leaks -= res.leaksFixed;
  res.imageEndOffset = inst.dataEnd();
  res.totalClusters = s.bat.length;
  let allocated = 0;
  let fragmented = 0;
  let prev = 0;
  for (let i = 0; i < s.bat.length; i++) {
    const off = batOffset(s, i);
    if (off === 0 || off + cs > fileSize) {
      prev = 0;
      continue;
    }
    if (prev !== 0 && prev + cs !== off) fragmented++;
    prev = off;
    allocated++;
  }
  res.allocatedClusters = allocated;
  res.fragmentedClusters = fragmented;
  res.compressedClusters = 0;
  if (repair) await file.flush();
  return res;
}

/** Copies `length` bytes from `from` to `to` in 4 MiB pieces (clusters may be up to 2 GiB). */
async function copyCluster(file: ParallelsInstance["state"]["file"], from: number, to: number, length: number): Promise<void> {
  const step = 4 << 20;
  for (let pos = 0; pos < length; pos += step) {
    const n = Math.min(step, length - pos);
    await file.write(to + pos, await readExact(file, from + pos, n, "data cluster", "parallels"));
  }
}
