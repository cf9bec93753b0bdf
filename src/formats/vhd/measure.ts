/**
 * Size measurement for VHD (vpc) targets (qemu-img 7.2 cannot measure vpc; vdisk's own bound).
 * Fixed: the disk (rounded as create rounds it) plus the footer. Dynamic: footer copy, dynamic
 * header, parent locators, BAT, then per 2 MiB block that holds data its sector bitmap and the
 * block, and the footer at the end. With `backing_file` the locators are bounded by a 4096-byte
 * directory (the absolute path depends on where the image is written).
 * @module
 */
import { requiredUnits, roundUp, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { vhdPlanSize } from "./create.js";
import { VHD_DEFAULT_BLOCK_SIZE, VHD_DYNAMIC_HEADER_SIZE, VHD_FOOTER_SIZE } from "./layout.js";
import { VHD_MAX_SECTORS, VhdDiskType } from "./layout.js";

/** The longest directory an absolute parent locator may carry (PATH_MAX). */
const MAX_DIRECTORY_CHARS = 4096;

/** measure for vpc: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureVhd(input: MeasureInput): MeasureResult {
  const hasBacking = input.backingFile !== undefined;
  // A differencing disk takes its parent's size and is dynamic.
  const plan = hasBacking
    ? { diskType: VhdDiskType.dynamic, size: roundUp(input.size, 512) }
    : vhdPlanSize(input.options, input.size);
  if (plan.size / 512 > VHD_MAX_SECTORS) {
    throw new RangeError(`Cannot create vpc image: size of ${plan.size} bytes exceeds the VHD limit of 2040 GiB`);
  }
  if (plan.diskType === VhdDiskType.fixed) {
    const bytes = plan.size + VHD_FOOTER_SIZE;
    return { required: bytes, fullyAllocated: bytes };
  }
  const bs = VHD_DEFAULT_BLOCK_SIZE;
  const entries = Math.ceil(plan.size / bs);
  let locators = 0;
  if (input.backingFile !== undefined) {
    const chars = input.backingFile.length + 2;
    locators = roundUp(2 * chars, 512) + roundUp(2 * (chars + MAX_DIRECTORY_CHARS), 512);
  }
  const head = VHD_FOOTER_SIZE + VHD_DYNAMIC_HEADER_SIZE + locators + roundUp(entries * 4, 512);
  const blockBytes = roundUp(bs / 512 / 8, 512) + bs;
  return {
    required: head + requiredUnits({ ...input, size: plan.size }, bs) * blockBytes + VHD_FOOTER_SIZE,
    fullyAllocated: head + entries * blockBytes + VHD_FOOTER_SIZE,
  };
}
