/**
 * Size measurement for VDI targets (qemu-img cannot measure vdi; vdisk's own bound): the
 * header and block map create writes, then one whole 1 MiB block per block that holds data
 * (every block for `static=on`, which create allocates up front).
 * @module
 */
import { requiredUnits, roundUp, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { VDI_BLOCK_SIZE, VDI_DISK_SIZE_MAX, VDI_HEADER_SIZE, VDI_SECTOR_SIZE } from "./layout.js";

/** measure for vdi: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureVdi(input: MeasureInput): MeasureResult {
  const size = roundUp(input.size, VDI_SECTOR_SIZE);
  if (size > VDI_DISK_SIZE_MAX) {
    const found = `0x${size.toString(16)}`;
    const max = `0x${VDI_DISK_SIZE_MAX.toString(16)}`;
    const message = `Unsupported VDI image size (size is ${found}, max supported is ${max})`;
    throw new ImageError("ERR_INVALID_OPTION", message, { format: "vdi" });
  }
  const blocks = Math.ceil(size / VDI_BLOCK_SIZE);
  const dataOffset = VDI_HEADER_SIZE + roundUp(blocks * 4, VDI_SECTOR_SIZE);
  const fullyAllocated = dataOffset + blocks * VDI_BLOCK_SIZE;
  if (input.options.static === true) return { required: fullyAllocated, fullyAllocated };
  return { required: dataOffset + requiredUnits({ ...input, size }, VDI_BLOCK_SIZE) * VDI_BLOCK_SIZE, fullyAllocated };
}
