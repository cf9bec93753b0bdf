/**
 * Persistent dirty bitmaps: the bitmap directory, read for `info` and for refcount checks.
 * vdisk does not maintain bitmaps: a writable open clears the autoclear bit, which marks
 * them inconsistent as the spec requires.
 * @module
 */
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { hex, qcow2Corrupt } from "./errors.js";
import type { Qcow2BitmapsExtension } from "./header.js";
import {
  QCOW2_BITMAP_DIR_FIELDS,
  QCOW2_BITMAP_DIR_FIXED_SIZE,
  QCOW2_BITMAP_FLAG_AUTO,
  QCOW2_BITMAP_FLAG_IN_USE,
  QCOW2_MAX_BITMAPS,
  QCOW2_MAX_BITMAP_DIRECTORY_BYTES,
  qcow2Decode,
  qcow2Pad8,
} from "./layout.js";

/** One bitmap directory entry. */
export interface Qcow2Bitmap {
  name: string;
  tableOffset: number;
  tableSize: number;
  flags: number;
  granularityBits: number;
}

/** qemu-img info's flag names. */
export function qcow2BitmapFlagNames(flags: number): string[] {
  const out: string[] = [];
  if (flags & QCOW2_BITMAP_FLAG_IN_USE) out.push("in-use");
  if (flags & QCOW2_BITMAP_FLAG_AUTO) out.push("auto");
  return out;
}

/** Reads the bitmap directory named by the bitmaps extension (bounded). */
export async function readQcow2Bitmaps(
  file: IoBackend,
  ext: Qcow2BitmapsExtension,
  clusterSize: number,
  fileSize: number,
): Promise<Qcow2Bitmap[]> {
  if (ext.nbBitmaps > QCOW2_MAX_BITMAPS || ext.directorySize > QCOW2_MAX_BITMAP_DIRECTORY_BYTES) {
    throw qcow2Corrupt(`bitmap directory of ${ext.nbBitmaps} bitmaps / ${ext.directorySize} bytes exceeds the limits`, "bitmaps extension");
  }
  if (ext.directoryOffset % clusterSize !== 0 || ext.directoryOffset + ext.directorySize > fileSize) {
    throw qcow2Corrupt(`bitmap directory at ${hex(ext.directoryOffset)} is not aligned or not inside the file`, "bitmaps extension");
  }
  const dir = await readExact(file, ext.directoryOffset, ext.directorySize, "bitmap directory", "qcow2");
  const out: Qcow2Bitmap[] = [];
  let pos = 0;
  for (let n = 0; n < ext.nbBitmaps; n++) {
    if (pos + QCOW2_BITMAP_DIR_FIXED_SIZE > dir.length) {
      throw qcow2Corrupt(`bitmap directory entry ${n} extends past the directory`, "bitmap directory", ext.directoryOffset + pos);
    }
    const e = qcow2Decode(QCOW2_BITMAP_DIR_FIELDS, dir, pos);
    const end = pos + QCOW2_BITMAP_DIR_FIXED_SIZE + e.extraDataSize + e.nameSize;
    if (end > dir.length) {
      throw qcow2Corrupt(`bitmap directory entry ${n} extends past the directory`, "bitmap directory", ext.directoryOffset + pos);
    }
    const nameAt = pos + QCOW2_BITMAP_DIR_FIXED_SIZE + e.extraDataSize;
    const tableOffset = e.tableOffset > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(e.tableOffset);
    if (tableOffset < 0 || tableOffset % clusterSize !== 0 || tableOffset + e.tableSize * 8 > fileSize) {
      throw qcow2Corrupt(`bitmap ${n} table at ${hex(tableOffset)} is not aligned or not inside the file`, "bitmap directory", ext.directoryOffset + pos);
    }
    out.push({
      name: new TextDecoder().decode(dir.subarray(nameAt, nameAt + e.nameSize)),
      tableOffset,
      tableSize: e.tableSize,
      flags: e.flags,
      granularityBits: e.granularityBits,
    });
    pos = qcow2Pad8(end);
  }
  return out;
}
