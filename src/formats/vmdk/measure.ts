/**
 * Size measurement for VMDK targets (qemu-img 7.2 cannot measure vmdk; vdisk's own bound), per
 * subformat, over every file the image consists of:
 * - monolithicSparse: the metadata create writes (header, descriptor, both grain directories
 *   and their grain tables) and one 64 KiB grain per grain that holds data;
 * - streamOptimized: the same metadata, and per grain the worst case of a grain that does not
 *   compress (marker plus deflate's bound, in whole sectors);
 * - twoGbMaxExtentSparse: that per 2 GiB extent, plus the descriptor file;
 * - monolithicFlat / twoGbMaxExtentFlat: the descriptor file and the whole disk.
 * The descriptor file is bounded with extent names of 255 bytes (the longest file name).
 * @module
 */
import { countTouchedUnits, roundUp } from "../../core/measure.js";
import type { GuestRange, MeasureInput, MeasureResult } from "../../core/measure.js";
import { ImageError } from "../../errors.js";
import { vmdkSparseLayout } from "./create.js";
import { buildVmdkDescriptor, encodeVmdkDescriptor } from "./descriptor.js";
import { VMDK_SECTOR_SIZE, VMDK_SPLIT_EXTENT_SIZE, VMDK_SUBFORMATS, type VmdkSubformat } from "./layout.js";

/** The longest file name (NAME_MAX): extent lines name files by their base name. */
const MAX_NAME_BYTES = 255;
/** Bytes of a grain marker before the compressed data. */
const GRAIN_MARKER_BYTES = 12;

/** zlib's compressBound: the most deflate (with zlib framing) turns `n` bytes into. */
function deflateBound(n: number): number {
  return n + Math.floor(n / 4096) + Math.floor(n / 16384) + Math.floor(n / 33554432) + 13;
}

/** Bytes of the descriptor of a disk of `size` bytes in `extents` extents (upper bound). */
function descriptorBytes(input: MeasureInput, subformat: string, size: number, extents: number, flat: boolean): number {
  const name = "x".repeat(MAX_NAME_BYTES);
  const sectorsText = String(Math.ceil(size / VMDK_SECTOR_SIZE));
  const line = flat ? `RW ${sectorsText} FLAT "${name}" 0` : `RW ${sectorsText} SPARSE "${name}"`;
  const adapterType = String(input.options.adapter_type ?? "ide");
  const text = buildVmdkDescriptor({
    cid: 0xfffffffe,
    parentCid: 0xffffffff,
    createType: subformat,
    parentFileNameHint: input.backingFile,
    extentLines: new Array<string>(extents).fill(line),
    hwVersion: input.options.compat6 === true ? "6" : String(input.options.hwversion ?? "4"),
    cylinders: Math.floor(size / (63 * 16 * VMDK_SECTOR_SIZE)),
    heads: 16,
    adapterType,
    toolsVersion: String(input.options.toolsversion ?? "2147483647"),
  });
  return encodeVmdkDescriptor(text).length;
}

/** Grains of `[start, start+length)` that hold data (all of them without a source map). */
function grainsIn(input: MeasureInput, start: number, length: number, grain: number): number {
  const all = Math.ceil(length / grain);
  if (input.allocated === undefined) return 0;
  if (input.backingFile !== undefined) return all;
  const inside: GuestRange[] = [];
  for (const r of input.allocated) {
    const from = Math.max(r.offset, start);
    const to = Math.min(r.offset + r.length, start + length);
    if (to > from) inside.push({ offset: from - start, length: to - from });
  }
  return Math.min(all, countTouchedUnits(inside, grain));
}

/** measure for vmdk: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureVmdk(input: MeasureInput): MeasureResult {
  const subformat = String(input.options.subformat ?? "monolithicSparse");
  if (!(VMDK_SUBFORMATS as readonly string[]).includes(subformat)) {
    throw new ImageError("ERR_INVALID_OPTION", `Invalid subformat '${subformat}' for vmdk`, { format: "vmdk" });
  }
  const sub = subformat as VmdkSubformat;
  const size = roundUp(input.size, VMDK_SECTOR_SIZE);
  const flat = sub === "monolithicFlat" || sub === "twoGbMaxExtentFlat";
  const split = sub === "twoGbMaxExtentFlat" || sub === "twoGbMaxExtentSparse";
  const extentSize = split ? VMDK_SPLIT_EXTENT_SIZE : size;
  const extents = size === 0 ? 0 : Math.ceil(size / extentSize);
  if (flat) {
    const bytes = descriptorBytes(input, sub, extentSize, extents, true) + size;
    return { required: bytes, fullyAllocated: bytes };
  }
  const streamGrainBytes = roundUp(GRAIN_MARKER_BYTES + deflateBound(64 * 1024), VMDK_SECTOR_SIZE);
  const grainBytes = sub === "streamOptimized" ? streamGrainBytes : 0;
  let required = split ? descriptorBytes(input, sub, extentSize, extents, false) : 0;
  let fullyAllocated = required;
  const parts = split ? extents : 1;
  for (let i = 0; i < parts; i++) {
    const start = i * extentSize;
    const length = split ? Math.min(extentSize, size - start) : size;
    const layout = vmdkSparseLayout(length);
    const grain = layout.granularity * VMDK_SECTOR_SIZE;
    const perGrain = grainBytes || grain;
    const meta = layout.overhead * VMDK_SECTOR_SIZE;
    required += meta + grainsIn(input, start, length, grain) * perGrain;
    fullyAllocated += meta + Math.ceil(length / grain) * perGrain;
  }
  return { required, fullyAllocated };
}
