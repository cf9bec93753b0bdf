/**
 * Internal snapshots: the snapshot table (read for `info` and `check`; vdisk does not create
 * or apply snapshots).
 * @module
 */
import { formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { hex, qcow2Corrupt, qcow2Limit } from "./errors.js";
import {
  QCOW2_MAX_L1_BYTES,
  QCOW2_MAX_SNAPSHOT_EXTRA,
  QCOW2_MAX_SNAPSHOT_TABLE_BYTES,
  QCOW2_SNAPSHOT_EXTRA_FIELDS,
  QCOW2_SNAPSHOT_FIELDS,
  QCOW2_SNAPSHOT_FIXED_SIZE,
  qcow2Decode,
  qcow2Pad8,
} from "./layout.js";

/** One snapshot table entry. */
export interface Qcow2Snapshot {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  diskSize?: number;
  icount?: number;
}

/** The parsed table and the bytes it occupies. */
export interface Qcow2SnapshotTable {
  snapshots: Qcow2Snapshot[];
  /** Bytes of the table (for refcount checks). */
  byteSize: number;
}

const decoder = new TextDecoder();

function safe(v: bigint, what: string, at: number): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw qcow2Corrupt(`snapshot ${what} ${v} exceeds 2^53`, "snapshot table", at);
  return Number(v);
}

/**
 * Reads `count` snapshot entries at `offset`. Reads in chunks so that a table claiming more
 * entries than the file holds fails at the end of the file, not with a huge allocation.
 */
export async function readQcow2Snapshots(
  file: IoBackend,
  offset: number,
  count: number,
  clusterSize: number,
  fileSize: number,
): Promise<Qcow2SnapshotTable> {
  const snapshots: Qcow2Snapshot[] = [];
  let pos = offset;
  for (let n = 0; n < count; n++) {
    if (pos - offset + QCOW2_SNAPSHOT_FIXED_SIZE > QCOW2_MAX_SNAPSHOT_TABLE_BYTES) {
      throw qcow2Limit(`snapshot table exceeds the limit of ${formatBytes(QCOW2_MAX_SNAPSHOT_TABLE_BYTES)}`, "snapshot table", offset);
    }
    if (pos + QCOW2_SNAPSHOT_FIXED_SIZE > fileSize) {
      throw qcow2Corrupt(`snapshot entry ${n} at ${hex(pos)} extends past the end of the file`, "snapshot table", pos);
    }
    const fixed = await readExact(file, pos, QCOW2_SNAPSHOT_FIXED_SIZE, "snapshot table", "qcow2");
    const f = qcow2Decode(QCOW2_SNAPSHOT_FIELDS, fixed);
    if (f.extraDataSize > QCOW2_MAX_SNAPSHOT_EXTRA) {
      throw qcow2Corrupt(`snapshot entry ${n} has ${f.extraDataSize} bytes of extra data (limit ${QCOW2_MAX_SNAPSHOT_EXTRA})`, "snapshot table", pos + 36);
    }
    const varLen = f.extraDataSize + f.idStrSize + f.nameSize;
    const entryLen = qcow2Pad8(QCOW2_SNAPSHOT_FIXED_SIZE + varLen);
    if (pos + QCOW2_SNAPSHOT_FIXED_SIZE + varLen > fileSize) {
      throw qcow2Corrupt(`snapshot entry ${n} at ${hex(pos)} extends past the end of the file`, "snapshot table", pos);
    }
    const rest = await readExact(file, pos + QCOW2_SNAPSHOT_FIXED_SIZE, varLen, "snapshot table", "qcow2");
    const extra = qcow2Decode(QCOW2_SNAPSHOT_EXTRA_FIELDS, rest, 0, f.extraDataSize);
    const l1TableOffset = safe(f.l1TableOffset, "L1 table offset", pos);
    if (f.l1Size * 8 > QCOW2_MAX_L1_BYTES) {
      throw qcow2Limit(`snapshot L1 table of ${formatBytes(f.l1Size * 8)} exceeds the limit of 32 MiB`, "snapshot table", pos + 8);
    }
    if (f.l1Size > 0 && (l1TableOffset % clusterSize !== 0 || l1TableOffset === 0 || l1TableOffset + f.l1Size * 8 > fileSize)) {
      throw qcow2Corrupt(`snapshot ${n} L1 table at ${hex(l1TableOffset)} is not aligned or not inside the file`, "snapshot table", pos);
    }
    const vmStateSize = f.extraDataSize >= 8 ? safe(extra.vmStateSizeLarge, "VM state size", pos) : f.vmStateSize;
    const s: Qcow2Snapshot = {
      l1TableOffset,
      l1Size: f.l1Size,
      id: decoder.decode(rest.subarray(f.extraDataSize, f.extraDataSize + f.idStrSize)),
      name: decoder.decode(rest.subarray(f.extraDataSize + f.idStrSize, varLen)),
      dateSec: f.dateSec,
      dateNsec: f.dateNsec,
      vmClockNsec: safe(f.vmClockNsec, "VM clock", pos + 24),
      vmStateSize,
    };
    if (f.extraDataSize >= 16) s.diskSize = safe(extra.diskSize, "disk size", pos);
    // icount is -1 (all ones) when not recorded.
    if (f.extraDataSize >= 24 && extra.icount !== 0xffffffffffffffffn) s.icount = safe(extra.icount, "icount", pos);
    snapshots.push(s);
    pos += entryLen;
  }
  return { snapshots, byteSize: pos - offset };
}
