/**
 * Size measurement for GOW targets (qemu-img knows no gow; vdisk's own bound): the header and
 * block map region of the version, then one 64 KiB slot per block that holds data.
 * @module
 */
import { requiredUnits, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { GOW_BLOCK_SIZE, type GowVersionLayout } from "./layout.js";

/** measure for a GOW version: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureGow(input: MeasureInput, layout: GowVersionLayout): MeasureResult {
  const blocks = Math.max(1, Math.ceil(input.size / GOW_BLOCK_SIZE));
  const size = blocks * GOW_BLOCK_SIZE;
  return {
    required: layout.dataBase + requiredUnits({ ...input, size }, GOW_BLOCK_SIZE) * GOW_BLOCK_SIZE,
    fullyAllocated: layout.dataBase + blocks * GOW_BLOCK_SIZE,
  };
}
