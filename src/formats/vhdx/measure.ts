/**
 * Size measurement for VHDX targets (qemu-img 7.2 cannot measure vhdx; vdisk's own bound): the
 * regions create lays out (header section, log, BAT, metadata), then one payload block per
 * block that holds data (every block for `subformat=fixed`), and with `backing_file` one 1 MiB
 * sector bitmap block per chunk.
 * @module
 */
import { requiredUnits, roundUp, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { vhdxDefaultBlockSize } from "./create.js";
import { VHDX_HEADER_SECTION_SIZE, VHDX_MAX_BLOCK_SIZE, VHDX_MAX_VIRTUAL_SIZE } from "./layout.js";
import { VHDX_MIB, vhdxGeometry } from "./layout.js";

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message, { format: "vhdx" });
}

/** measure for vhdx: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureVhdx(input: MeasureInput): MeasureResult {
  const o = input.options;
  const hasParent = input.backingFile !== undefined;
  const lss = o.logical_sector_size !== undefined ? Number(o.logical_sector_size) : 512;
  if (lss !== 512 && lss !== 4096) throw invalid("Logical sector size must be 512 or 4096");
  const size = roundUp(input.size, lss);
  if (size > VHDX_MAX_VIRTUAL_SIZE) throw invalid("Image size too large; max of 64TB");
  let blockSize = o.block_size !== undefined ? roundUp(Number(o.block_size), VHDX_MIB) : 0;
  if (blockSize === 0) blockSize = vhdxDefaultBlockSize(size);
  if ((blockSize & (blockSize - 1)) !== 0) throw invalid("Block size must be a power of two");
  if (blockSize > VHDX_MAX_BLOCK_SIZE) throw invalid(`Block size must not exceed ${VHDX_MAX_BLOCK_SIZE}`);
  const logSize = o.log_size !== undefined ? roundUp(Number(o.log_size), VHDX_MIB) : VHDX_MIB;
  const g = vhdxGeometry(size, blockSize, lss, hasParent);
  const batEntries = g.payloadBlocks === 0 && !hasParent ? Math.floor(0xffffffff / g.chunkRatio) : g.batEntries;
  const batLength = Math.max(VHDX_MIB, roundUp(batEntries * 8, VHDX_MIB));
  const dataStart = VHDX_HEADER_SECTION_SIZE + logSize + batLength + VHDX_MIB;
  const bitmaps = hasParent ? g.bitmapBlocks * VHDX_MIB : 0;
  const fullyAllocated = dataStart + g.payloadBlocks * blockSize + bitmaps;
  if (o.subformat === "fixed") return { required: fullyAllocated, fullyAllocated };
  const blocks = requiredUnits({ ...input, size }, blockSize);
  return { required: dataStart + blocks * blockSize + (blocks > 0 ? bitmaps : 0), fullyAllocated };
}
