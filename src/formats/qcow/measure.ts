/**
 * Size measurement for QCOW (v1) targets (qemu-img cannot measure qcow; vdisk's own bound):
 * the header, backing name and L1 table as create writes them, rounded to a cluster, then one
 * cluster-rounded L2 table per L2 span that holds data and one cluster per data cluster, which
 * is how the driver appends them.
 * @module
 */
import { countTouchedUnits, requiredUnits, roundUp } from "../../core/measure.js";
import type { MeasureInput, MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { QCOW_HEADER_SIZE, QCOW_MAX_CLUSTER_BITS, QCOW_MIN_CLUSTER_BITS } from "./layout.js";
import { qcowDefaultL2Bits, qcowGeometry } from "./layout.js";

/** measure for qcow: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureQcow(input: MeasureInput): MeasureResult {
  const size = roundUp(input.size, 512);
  const hasBacking = input.backingFile !== undefined;
  const v = input.options.cluster_size;
  const clusterBits = v === undefined ? (hasBacking ? 9 : 12) : Math.log2(Number(v));
  if (!Number.isInteger(clusterBits) || clusterBits < QCOW_MIN_CLUSTER_BITS || clusterBits > QCOW_MAX_CLUSTER_BITS) {
    const message = `qcow cluster size must be a power of two between 512 and 64k (got ${v})`;
    throw new ImageError("ERR_INVALID_OPTION", message, { format: "qcow" });
  }
  const geo = qcowGeometry(size, clusterBits, qcowDefaultL2Bits(clusterBits));
  const cs = geo.clusterSize;
  const nameBytes = new TextEncoder().encode(input.backingFile ?? "").length;
  const l1Offset = roundUp(QCOW_HEADER_SIZE + nameBytes, 8);
  const emptyBytes = l1Offset + roundUp(geo.l1Entries * 8, 512);
  const l2TableBytes = roundUp(geo.l2Bytes, cs);
  const bytesFor = (clusters: number, tables: number): number =>
    clusters === 0 ? emptyBytes : roundUp(emptyBytes, cs) + tables * l2TableBytes + clusters * cs;
  const allClusters = Math.ceil(size / cs);
  const clusters = requiredUnits({ ...input, size }, cs);
  const tables = input.allocated === undefined || hasBacking
    ? Math.ceil((clusters * cs) / geo.l2Span)
    : countTouchedUnits(input.allocated, geo.l2Span);
  return { required: bytesFor(clusters, tables), fullyAllocated: bytesFor(allClusters, Math.ceil(size / geo.l2Span)) };
}
