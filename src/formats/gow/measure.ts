/**
 * Size measurement for GOW targets (qemu-img knows no gow; vdisk's own bound): the header and
 * block map region of the version, then one 64 KiB slot per block that holds data.
 * @module
 */
import { requiredUnits, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { GOW_BLOCK_SIZE, type GowVersionLayout } from "./layout.js";

/** measure for a GOW version: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureGow(input: MeasureInput, layout: GowVersionLayout): MeasureResult {
  const blocks = Math.ceil(input.size / GOW_BLOCK_SIZE);
  if (input.size < GOW_BLOCK_SIZE || blocks > layout.maxBlocks) {
    const bound = input.size < GOW_BLOCK_SIZE
      ? "below one 64 KiB block"
      : `above the ${layout.maxBlocks * GOW_BLOCK_SIZE}-byte maximum`;
    const message = `Cannot create ${layout.name} image: a size of ${input.size} bytes is ${bound}`;
    throw new ImageError("ERR_OUT_OF_RANGE", message, { format: layout.name });
  }
  const size = blocks * GOW_BLOCK_SIZE;
  return {
    required: layout.dataBase + requiredUnits({ ...input, size }, GOW_BLOCK_SIZE) * GOW_BLOCK_SIZE,
    fullyAllocated: layout.dataBase + blocks * GOW_BLOCK_SIZE,
  };
}
