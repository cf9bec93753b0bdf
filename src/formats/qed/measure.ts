/**
 * Size measurement for QED targets (qemu-img cannot measure qed; vdisk's own bound): the
 * header cluster and L1 table create writes, then one L2 table per L2 span that holds data and
 * one cluster per data cluster, appended as the driver allocates them.
 * @module
 */
import { countTouchedUnits, requiredUnits, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { QED_DEFAULT_CLUSTER_SIZE, QED_DEFAULT_TABLE_SIZE, qedPowerOfTwoIn } from "./layout.js";
import { QED_MAX_CLUSTER_SIZE, QED_MAX_TABLE_SIZE, QED_MIN_CLUSTER_SIZE, QED_MIN_TABLE_SIZE } from "./layout.js";

/** measure for qed: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureQed(input: MeasureInput): MeasureResult {
  const cs = Number(input.options.cluster_size ?? QED_DEFAULT_CLUSTER_SIZE);
  const tableClusters = Number(input.options.table_size ?? QED_DEFAULT_TABLE_SIZE);
  const invalid = (what: string, min: number, max: number, got: number): ImageError =>
    new ImageError("ERR_INVALID_OPTION", `QED ${what} must be a power of two from ${min} to ${max} (got ${got})`, {
      format: "qed",
    });
  if (!qedPowerOfTwoIn(cs, QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE)) {
    throw invalid("cluster size", QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE, cs);
  }
  if (!qedPowerOfTwoIn(tableClusters, QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE)) {
    throw invalid("table size (in clusters)", QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE, tableClusters);
  }
  const tableBytes = cs * tableClusters;
  const l2Span = (tableBytes / 8) * cs;
  const emptyBytes = cs + tableBytes;
  const size = Math.ceil(input.size / 512) * 512;
  const clusters = requiredUnits({ ...input, size }, cs);
  const tables =
    input.allocated === undefined || input.backingFile !== undefined
      ? Math.ceil((clusters * cs) / l2Span)
      : countTouchedUnits(input.allocated, l2Span);
  return {
    required: emptyBytes + tables * tableBytes + clusters * cs,
    fullyAllocated: emptyBytes + Math.ceil(size / l2Span) * tableBytes + Math.ceil(size / cs) * cs,
  };
}
