/**
 * `qemu-img measure` for qcow2 targets: the same figures as qemu-img 7.2, from the same
 * layout arithmetic (header cluster, L2 tables, L1 table, refcount structures that count
 * themselves) and the same option checks, in the same order.
 * @module
 */
import type { CreateOptionSpec } from "../../core/format.js";
import { roundUp, requiredUnits } from "../../core/measure.js";
import type { MeasureBitmap, MeasureInput, MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { QCOW2_CREATE_OPTIONS } from "./create.js";
import { QCOW2_MAX_L1_BYTES } from "./layout.js";

/**
 * The options measure takes: create's, except that `compat` and `preallocation` are checked
 * by measure itself (qemu-img accepts `falloc`/`full` here, and names a bad compat its own way).
 */
export const QCOW2_MEASURE_OPTIONS: readonly CreateOptionSpec[] = QCOW2_CREATE_OPTIONS.map((s) =>
  s.name === "compat" || s.name === "preallocation"
    ? { name: s.name, type: "string", help: s.help, defaultText: s.defaultText }
    : s
);

const MIN_EXTL2_CLUSTER_BYTES = 16384;
const REFTABLE_ENTRY_BYTES = 8;
const L1_ENTRY_BYTES = 8;
/** Bytes of a bitmap directory entry before its name (spec: docs/interop/qcow2.txt). */
const BITMAP_DIR_ENTRY_FIXED_BYTES = 24;
const BITMAP_TABLE_ENTRY_BYTES = 8;

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message, { format: "qcow2" });
}

/**
 * Clusters of refcount blocks plus refcount table needed to count `clusters` clusters and
 * themselves: iterated to the fixed point, since the refcount structures need refcounts too.
 */
export function qcow2RefcountMetadataBytes(clusters: number, clusterSize: number, refcountOrder: number): number {
  const blocksPerTableCluster = clusterSize / REFTABLE_ENTRY_BYTES;
  const refcountsPerBlock = (clusterSize * 8) / 2 ** refcountOrder;
  let table = 0;
  let blocks = 0;
  let total = -1;
  for (;;) {
    blocks = Math.ceil((clusters + table + blocks) / refcountsPerBlock);
    table = Math.ceil(blocks / blocksPerTableCluster);
    const next = clusters + blocks + table;
    if (next === total) break;
    total = next;
  }
  return (blocks + table) * clusterSize;
}

/** File size of a qcow2 image of `virtualSize` with every cluster allocated. */
export function qcow2FullyAllocatedBytes(
  virtualSize: number,
  clusterSize: number,
  refcountOrder: number,
  extendedL2: boolean,
): number {
  const dataBytes = roundUp(virtualSize, clusterSize);
  const l2EntryBytes = extendedL2 ? 16 : 8;
  let meta = clusterSize; // header
  const l2Entries = roundUp(dataBytes / clusterSize, clusterSize / l2EntryBytes);
  meta += l2Entries * l2EntryBytes;
  const l1Entries = roundUp((l2Entries * l2EntryBytes) / clusterSize, clusterSize / L1_ENTRY_BYTES);
  meta += l1Entries * L1_ENTRY_BYTES;
  meta += qcow2RefcountMetadataBytes((meta + dataBytes) / clusterSize, clusterSize, refcountOrder);
  return meta + dataBytes;
}

/** Bytes the source's bitmaps take when copied: every bitmap cluster, its table, the directory. */
function bitmapsBytes(bitmaps: readonly MeasureBitmap[], virtualSize: number, clusterSize: number): number {
  let bytes = 0;
  let directoryBytes = 0;
  const enc = new TextEncoder();
  for (const b of bitmaps) {
    const bitmapBytes = Math.ceil(Math.ceil(virtualSize / b.granularity) / 8);
    const bitmapClusters = Math.ceil(bitmapBytes / clusterSize);
    bytes += bitmapClusters * clusterSize + roundUp(bitmapClusters * BITMAP_TABLE_ENTRY_BYTES, clusterSize);
    directoryBytes += roundUp(BITMAP_DIR_ENTRY_FIXED_BYTES + enc.encode(b.name).length, 8);
  }
  return bytes + roundUp(directoryBytes, clusterSize);
}

/** qemu-img measure for qcow2 (encryption is not supported by vdisk). */
export function measureQcow2(input: MeasureInput): MeasureResult {
  const o = input.options;
  const clusterSize = Number(o.cluster_size ?? 65536);
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    throw invalid("Cluster size must be a power of two between 512 and 2048k");
  }
  const compat = String(o.compat ?? "1.1");
  if (compat !== "0.10" && compat !== "1.1") throw invalid(`Invalid compatibility level: '${compat}'`);
  const version = compat === "0.10" ? 2 : 3;
  const refcountBits = Number(o.refcount_bits ?? 16);
  const refcountOrder = Math.log2(refcountBits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) {
    throw invalid("Refcount width must be a power of two and may not exceed 64 bits");
  }
  if (version === 2 && refcountBits !== 16) {
    throw invalid(
      "Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)",
    );
  }
  const extendedL2 = o.extended_l2 === true;
  if (extendedL2 && clusterSize < MIN_EXTL2_CLUSTER_BYTES) {
    throw invalid(
      `Extended L2 entries are only supported with cluster sizes of at least ${MIN_EXTL2_CLUSTER_BYTES} bytes`,
    );
  }
  const prealloc = String(o.preallocation ?? "off");
  if (!["off", "metadata", "falloc", "full"].includes(prealloc)) throw invalid(`invalid parameter value: ${prealloc}`);

  const virtualSize = roundUp(input.size, clusterSize);
  const l2EntryBytes = extendedL2 ? 16 : 8;
  const l2Tables = Math.ceil(virtualSize / clusterSize / (clusterSize / l2EntryBytes));
  if (l2Tables * L1_ENTRY_BYTES > QCOW2_MAX_L1_BYTES) {
    throw invalid("The image size is too large (try using a larger cluster size)");
  }

  // Data clusters a convert writes: every one with a backing file to differ from (qemu's rule).
  let dataBytes = requiredUnits(input, clusterSize) * clusterSize;
  if (prealloc === "full" || prealloc === "falloc") dataBytes = virtualSize;
  const fullyAllocated = qcow2FullyAllocatedBytes(virtualSize, clusterSize, refcountOrder, extendedL2);
  const result: MeasureResult = { required: fullyAllocated - virtualSize + dataBytes, fullyAllocated };
  if (version >= 3 && input.sourceBitmaps !== undefined) {
    result.bitmaps = bitmapsBytes(input.sourceBitmaps, input.size, clusterSize);
  }
  return result;
}
