/**
 * `create -f vmdk` with qemu-img 7.2's options and layout: monolithicSparse and
 * streamOptimized in one file (descriptor embedded), monolithicFlat and the twoGbMaxExtent
 * subformats as a descriptor file plus extent files made next to it through the open policy
 * (purpose `extent`, created). A backing file must be a VMDK: its CID becomes the parentCID.
 * @module
 */
import type { CreateContext } from "../../core/format.js";
import { ImageError, LimitExceededError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { buildVmdkDescriptor, encodeVmdkDescriptor, randomVmdkCid } from "./descriptor.js";
import { readVmdkCid } from "./descriptor-read.js";
import {
  VMDK_COMPRESSION_DEFLATE,
  VMDK_COMPRESSION_NONE,
  VMDK_DEFAULT_DESCRIPTOR_SECTORS,
  VMDK_DEFAULT_GRANULARITY,
  VMDK_DEFAULT_GTES_PER_GT,
  VMDK_FLAG_COMPRESSED,
  VMDK_FLAG_MARKERS,
  VMDK_FLAG_NL_DETECT,
  VMDK_FLAG_RGD,
  VMDK_FLAG_ZERO_GRAIN,
  VMDK_MAX_EXTENTS,
  VMDK_MAX_GD_ENTRIES,
  VMDK_SECTOR_SIZE,
  VMDK_SPARSE_MAGIC,
  VMDK_SPLIT_EXTENT_SIZE,
  VMDK_SUBFORMATS,
  VmdkSparseHeaderCodec,
  type VmdkSubformat,
} from "./layout.js";

const NO_PARENT_CID = 0xffffffff;

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message, { format: "vmdk" });
}

/** Options of {@link initVmdkSparseExtent}. */
export interface VmdkSparseInit {
  compressed: boolean;
  zeroedGrain: boolean;
}

/**
 * Writes an empty sparse extent of `size` bytes (a multiple of 512) into the empty `file`, in
 * QEMU's layout: header, room for a 20-sector descriptor, redundant GD and its GTs, GD and its
 * GTs, grains from the next grain boundary. GTs are left as zeros (a hole).
 */
/** Where a new sparse extent of `size` bytes keeps its structures, in sectors (QEMU's layout). */
export interface VmdkSparseLayout {
  capacity: number;
  granularity: number;
  gtes: number;
  gtSectors: number;
  gtCount: number;
  gdSectors: number;
  descriptorOffset: number;
  descriptorSize: number;
  rgdOffset: number;
  gdOffset: number;
  /** First grain sector: everything before it is metadata. */
  overhead: number;
}

/** The layout of a new sparse extent of `size` bytes (a multiple of 512). */
export function vmdkSparseLayout(size: number): VmdkSparseLayout {
  const capacity = size / VMDK_SECTOR_SIZE;
  const granularity = VMDK_DEFAULT_GRANULARITY;
  const gtes = VMDK_DEFAULT_GTES_PER_GT;
  const grains = Math.ceil(capacity / granularity);
  const gtSectors = Math.ceil((gtes * 4) / VMDK_SECTOR_SIZE);
  const gtCount = Math.ceil(grains / gtes);
  if (gtCount > VMDK_MAX_GD_ENTRIES) {
    throw new LimitExceededError(
      `Cannot create vmdk image: ${size} bytes need a grain directory of ${gtCount} entries, more than the ${VMDK_MAX_GD_ENTRIES} a reader accepts`,
      { format: "vmdk" },
    );
  }
  const gdSectors = Math.ceil((gtCount * 4) / VMDK_SECTOR_SIZE);
  const descriptorOffset = 1;
  const descriptorSize = VMDK_DEFAULT_DESCRIPTOR_SECTORS;
  const rgdOffset = descriptorOffset + descriptorSize;
  const gdOffset = rgdOffset + gdSectors + gtSectors * gtCount;
  const overhead = Math.ceil((gdOffset + gdSectors + gtSectors * gtCount) / granularity) * granularity;
  return { capacity, granularity, gtes, gtSectors, gtCount, gdSectors, descriptorOffset, descriptorSize, rgdOffset, gdOffset, overhead };
}

export async function initVmdkSparseExtent(file: IoBackend, size: number, o: VmdkSparseInit): Promise<void> {
  const { capacity, granularity, gtes, gtSectors, gtCount, gdSectors, descriptorOffset, descriptorSize, rgdOffset, gdOffset, overhead } =
    vmdkSparseLayout(size);
  const flags = VMDK_FLAG_RGD | VMDK_FLAG_NL_DETECT |
    (o.compressed ? VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS : 0) |
    (o.zeroedGrain ? VMDK_FLAG_ZERO_GRAIN : 0);
  const header = VmdkSparseHeaderCodec.encode({
    magic: VMDK_SPARSE_MAGIC,
    version: o.compressed ? 3 : o.zeroedGrain ? 2 : 1,
    flags,
    capacity,
    granularity,
    descriptorOffset,
    descriptorSize,
    numGtesPerGt: gtes,
    rgdOffset,
    gdOffset,
    overhead,
    uncleanShutdown: 0,
    singleEndLineChar: 0x0a,
    nonEndLineChar: 0x20,
    doubleEndLineChar1: 0x0d,
    doubleEndLineChar2: 0x0a,
    compressAlgorithm: o.compressed ? VMDK_COMPRESSION_DEFLATE : VMDK_COMPRESSION_NONE,
    pad: new Uint8Array(0),
  });
  await file.write(0, header);
  await file.truncate(overhead * VMDK_SECTOR_SIZE);
  if (gtCount === 0) return;
  const dir = new Uint8Array(gdSectors * VMDK_SECTOR_SIZE);
  const dv = new DataView(dir.buffer);
  for (const at of [rgdOffset, gdOffset]) {
    for (let i = 0; i < gtCount; i++) dv.setUint32(i * 4, at + gdSectors + i * gtSectors, true);
    await file.write(at * VMDK_SECTOR_SIZE, dir);
  }
}

/** `name` split as QEMU does: the part before the last dot, and the rest (with the dot). */
export function splitName(name: string): { prefix: string; postfix: string } {
  const base = name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
  const dot = base.lastIndexOf(".");
  return dot < 0 ? { prefix: base, postfix: "" } : { prefix: base.slice(0, dot), postfix: base.slice(dot) };
}

/** Creates the image described by `ctx`. */
export async function createVmdk(ctx: CreateContext): Promise<void> {
  const o = ctx.options;
  const subformat = (o.subformat as VmdkSubformat | undefined) ?? "monolithicSparse";
  if (!VMDK_SUBFORMATS.includes(subformat)) throw invalid(`Invalid subformat '${subformat}' for vmdk`);
  const adapterType = (o.adapter_type as string | undefined) ?? "ide";
  let hwVersion = o.hwversion as string | undefined;
  if (hwVersion === "undefined") hwVersion = undefined;
  if (o.compat6 === true) {
    if (hwVersion !== undefined) throw invalid("compat6 cannot be enabled with hwversion set");
    hwVersion = "6";
  }
  const toolsVersion = (o.toolsversion as string | undefined) ?? "2147483647";
  const zeroedGrain = o.zeroed_grain === true;
  const flat = subformat === "monolithicFlat" || subformat === "twoGbMaxExtentFlat";
  const split = subformat === "twoGbMaxExtentFlat" || subformat === "twoGbMaxExtentSparse";
  const compressed = subformat === "streamOptimized";
  if (flat && ctx.backing) throw new UnsupportedFeatureError("Flat image can't have backing file", { format: "vmdk" });
  if (flat && zeroedGrain) throw new UnsupportedFeatureError("Flat image can't enable zeroed grain", { format: "vmdk" });
  const size = Math.ceil(ctx.size / VMDK_SECTOR_SIZE) * VMDK_SECTOR_SIZE;

  let parentCid = NO_PARENT_CID;
  if (ctx.backing) {
    if (ctx.backing.format !== undefined && ctx.backing.format !== "vmdk") {
      throw invalid(`Invalid backing file format: ${ctx.backing.format}. Must be vmdk`);
    }
    const b = await ctx.openFile({ name: ctx.backing.name, relativeTo: ctx.file, writable: false, purpose: "backing" });
    try {
      const cid = await readVmdkCid(b);
      if (cid === undefined) throw new ImageError("ERR_CORRUPT_IMAGE", "Failed to read parent CID", { format: "vmdk" });
      parentCid = cid;
    } finally {
      await b.close();
    }
  }

  const { prefix, postfix } = splitName(ctx.file.name);
  const extentLines: string[] = [];
  const lineFor = (sectors: number, name: string): string =>
    flat ? `RW ${sectors} FLAT "${name}" 0` : `RW ${sectors} SPARSE "${name}"`;
  const embedded = !split && !flat;
  if (embedded) {
    await initVmdkSparseExtent(ctx.file, size, { compressed, zeroedGrain });
    extentLines.push(lineFor(size / VMDK_SECTOR_SIZE, splitName(ctx.file.name).prefix + postfix));
  } else {
    const extentSize = split ? VMDK_SPLIT_EXTENT_SIZE : size;
    const count = size === 0 ? 0 : Math.ceil(size / extentSize);
    if (count > VMDK_MAX_EXTENTS) {
      throw new LimitExceededError(`Cannot create vmdk image: ${count} extents exceed the limit of ${VMDK_MAX_EXTENTS}`, {
        format: "vmdk",
      });
    }
    for (let i = 0; i < count; i++) {
      const cur = Math.min(extentSize, size - i * extentSize);
      const name = split ? `${prefix}-${flat ? "f" : "s"}${String(i + 1).padStart(3, "0")}${postfix}` : `${prefix}-flat${postfix}`;
      const f = await ctx.openFile({ name, relativeTo: ctx.file, writable: true, create: true, purpose: "extent" });
      try {
        if (flat) await f.truncate(cur);
        else await initVmdkSparseExtent(f, cur, { compressed: false, zeroedGrain });
        await f.flush();
      } finally {
        await f.close();
      }
      extentLines.push(lineFor(cur / VMDK_SECTOR_SIZE, name));
    }
  }

  const heads = adapterType === "ide" ? 16 : 255;
  const text = buildVmdkDescriptor({
    cid: randomVmdkCid(),
    parentCid,
    createType: subformat,
    parentFileNameHint: ctx.backing?.name,
    extentLines,
    hwVersion: hwVersion ?? "4",
    cylinders: Math.floor(size / (63 * heads * VMDK_SECTOR_SIZE)),
    heads,
    adapterType,
    toolsVersion,
  });
  const bytes = encodeVmdkDescriptor(text);
  if (embedded) {
    const room = VMDK_DEFAULT_DESCRIPTOR_SECTORS * VMDK_SECTOR_SIZE;
    if (bytes.length >= room) {
      throw invalid(`Cannot create vmdk image: the descriptor (${bytes.length} bytes) does not fit in its ${room}-byte area (shorten the backing file name)`);
    }
    await ctx.file.write(VMDK_SECTOR_SIZE, bytes);
  } else {
    await ctx.file.write(0, bytes);
    await ctx.file.truncate(bytes.length);
  }
  await ctx.file.flush();
}
