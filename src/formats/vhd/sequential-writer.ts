/**
 * VHD into a sink, front to back. Dynamic (the default):
 * ```
 * [ footer copy ][ dynamic header ][ BAT ][ bitmap + block ]... in guest order [ footer ]
 * ```
 * Every 2 MiB block the source's data ranges touch is stored, with all its sectors marked
 * present; the BAT is known before any data is read. Fixed (`subformat=fixed`, `azure=on`):
 * the guest bytes, holes as zeros, then the footer. Sizes are rounded as `create` rounds them.
 * @module
 */
import type { CreateOptionValues } from "../../core/format.js";
import type { SequentialWriteContext, SequentialWriter } from "../../core/sequential-writer.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import { forEachUnit, unitRuns, writeRawDisk } from "../shared/sequential-units.js";
import { vhdMakeFooter, vhdPlanSize, type VhdSizePlan } from "./create.js";
import {
  VHD_DEFAULT_BLOCK_SIZE,
  VHD_DYNAMIC_COOKIE,
  VHD_DYNAMIC_HEADER_SIZE,
  VHD_FOOTER_SIZE,
  VHD_MAX_SECTORS,
  VHD_PARENT_LOCATOR_COUNT,
  VHD_VERSION_1_0,
  VhdDiskType,
  encodeVhdDynamicHeader,
  encodeVhdFooter,
  vhdBitmapSize,
} from "./layout.js";

function plan(options: CreateOptionValues, size: number): VhdSizePlan {
  const p = vhdPlanSize(options, size);
  if (p.size / 512 > VHD_MAX_SECTORS) {
    const why = `Cannot create vpc image: size of ${p.size} bytes exceeds the VHD limit of 2040 GiB`;
    throw new ImageError("ERR_INVALID_OPTION", why, { format: "vpc" });
  }
  return p;
}

async function writeVhdStream(ctx: SequentialWriteContext): Promise<void> {
  const p = plan(ctx.options, ctx.source.size);
  if (p.size !== ctx.source.size) ctx.warn(`vpc: the size was rounded up from ${ctx.source.size} to ${p.size} bytes`);
  const out = ctx.output;
  if (p.diskType === VhdDiskType.fixed) {
    await writeRawDisk(ctx, p.size);
    await out.write(encodeVhdFooter(vhdMakeFooter(p, -1)));
    return;
  }
  const footer = encodeVhdFooter(vhdMakeFooter(p, VHD_FOOTER_SIZE));
  const bs = VHD_DEFAULT_BLOCK_SIZE;
  const entries = Math.ceil(p.size / bs);
  const batOffset = VHD_FOOTER_SIZE + VHD_DYNAMIC_HEADER_SIZE;
  const batBytes = Math.ceil((entries * 4) / 512) * 512;
  const bitmapBytes = vhdBitmapSize(bs);
  const runs = unitRuns(ctx.source.dataRanges, bs);
  const bat = new Uint8Array(batBytes).fill(0xff);
  const bv = new DataView(bat.buffer);
  let sector = (batOffset + batBytes) / 512;
  for (const r of runs) {
    for (let b = r.first; b < r.first + r.count; b++) {
      bv.setUint32(b * 4, sector);
      sector += (bitmapBytes + bs) / 512;
    }
  }
  if (sector > 0xffffffff) {
    throw new ImageError("ERR_LIMIT_EXCEEDED", "The VHD would need block offsets past 2^32 sectors", { format: "vpc" });
  }
  const header = encodeVhdDynamicHeader({
    cookie: VHD_DYNAMIC_COOKIE,
    dataOffset: -1,
    tableOffset: batOffset,
    headerVersion: VHD_VERSION_1_0,
    maxTableEntries: entries,
    blockSize: bs,
    checksum: 0,
    parentUniqueId: new Uint8Array(16),
    parentTimestamp: 0,
    reserved1: 0,
    parentUnicodeName: new Uint8Array(0),
    parentLocators: new Uint8Array(24 * VHD_PARENT_LOCATOR_COUNT),
    reserved2: new Uint8Array(256),
  });
  await out.write(footer.slice());
  await out.write(header);
  await out.write(bat);
  // Every sector of a stored block is present (the block holds the guest's bytes, zeros included).
  const bitmap = new Uint8Array(bitmapBytes).fill(0xff);
  await forEachUnit(ctx.source, runs, bs, async (_b, bytes) => {
    await out.write(bitmap);
    await out.write(bytes);
  }, ctx.progress);
  await out.write(footer);
}

/** The vpc sequential writer (dynamic and fixed VHDs). */
export const vhdSequentialWriter: SequentialWriter = {
  prepare(options, compress) {
    if (compress) {
      throw new UnsupportedFeatureError("Compression not supported for this file format", { format: "vpc" });
    }
    const p = plan(options, 0);
    return { passes: 1, zeroScanUnit: p.diskType === VhdDiskType.fixed ? undefined : VHD_DEFAULT_BLOCK_SIZE };
  },
  write: writeVhdStream,
};
