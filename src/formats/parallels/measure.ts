/**
 * Size measurement for parallels targets (qemu-img cannot measure parallels; vdisk's own
 * bound): the header and catalog rounded to a cluster, as create lays them out, then one
 * cluster per cluster that holds data.
 * @module
 */
import { requiredUnits, roundUp, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { PARALLELS_DEFAULT_CLUSTER_SIZE, PARALLELS_HEADER_SIZE } from "./layout.js";

/** measure for parallels: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureParallels(input: MeasureInput): MeasureResult {
  const cluster = roundUp(Number(input.options.cluster_size ?? PARALLELS_DEFAULT_CLUSTER_SIZE), 512) || 512;
  const size = roundUp(input.size, 512);
  const entries = Math.ceil(size / cluster);
  const dataStart = roundUp(PARALLELS_HEADER_SIZE + entries * 4, cluster);
  return {
    required: dataStart + requiredUnits({ ...input, size }, cluster) * cluster,
    fullyAllocated: dataStart + entries * cluster,
  };
}
