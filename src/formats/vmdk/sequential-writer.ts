/**
 * streamOptimized VMDK into a sink, front to back, as VMware's "Virtual Disk Format 1.1"
 * describes stream-optimized extents (the grain directory after the grains, found through the
 * footer):
 * ```
 * [ header gdOffset=-1 ][ descriptor ][ pad to grain 1 ]
 * [ grain marker + zlib data ]... [ GT marker ][ GT ]   for each grain table with data, in order
 * [ GD marker ][ GD ][ footer marker ][ footer: header with gdOffset ][ end-of-stream marker ]
 * ```
 * Grains are compressed as they are read, so only one grain table and the grain directory
 * (4 bytes per 32 MiB of disk) are held. All-zero grains are left out when `sparseSize` > 0;
 * grain tables without a grain are left out too (GD entry 0: the whole table is unallocated).
 * The writer used by `create`/`write` of streamOptimized images (appending grains to a seekable
 * file) is `stream-writer.ts`; this one never seeks.
 * @module
 */
import type { CreateOptionValues } from "../../core/format.js";
import type { SequentialWriteContext, SequentialWriter } from "../../core/sequential-writer.js";
import { ImageError, LimitExceededError } from "../../errors.js";
import { forEachUnitTransformed, unitRuns } from "../shared/sequential-units.js";
import { encodeVmdkCompressedGrain } from "./compressed-grain.js";
import { buildVmdkDescriptor, encodeVmdkDescriptor, randomVmdkCid } from "./descriptor.js";
import {
  VMDK_COMPRESSION_DEFLATE,
  VMDK_DEFAULT_DESCRIPTOR_SECTORS,
  VMDK_DEFAULT_GRANULARITY,
  VMDK_DEFAULT_GTES_PER_GT,
  VMDK_FLAG_COMPRESSED,
  VMDK_FLAG_MARKERS,
  VMDK_FLAG_NL_DETECT,
  VMDK_GD_AT_END,
  VMDK_MAX_GD_ENTRIES,
  VMDK_SECTOR_SIZE,
  VMDK_SPARSE_MAGIC,
  VmdkMarkerCodec,
  VmdkMarkerType,
  VmdkSparseHeaderCodec,
} from "./layout.js";

const NO_PARENT_CID = 0xffffffff;

interface StreamParams {
  adapterType: string;
  hwVersion: string;
  toolsVersion: string;
}

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message, { format: "vmdk" });
}

/** The options a stream takes: only `subformat=streamOptimized` can be written front to back. */
function streamParams(o: CreateOptionValues): StreamParams {
  const subformat = (o.subformat as string | undefined) ?? "monolithicSparse";
  if (subformat !== "streamOptimized") {
    throw invalid(
      `Cannot write vmdk subformat ${subformat} to a non-seekable output: use -o subformat=streamOptimized`,
    );
  }
  if (o.zeroed_grain === true) {
    throw invalid("Cannot stream vmdk with zeroed_grain=on (streamOptimized has no zeroed grains)");
  }
  let hwVersion = o.hwversion as string | undefined;
  if (hwVersion === "undefined") hwVersion = undefined;
  if (o.compat6 === true) {
    if (hwVersion !== undefined) throw invalid("compat6 cannot be enabled with hwversion set");
    hwVersion = "6";
  }
  return {
    adapterType: (o.adapter_type as string | undefined) ?? "ide",
    hwVersion: hwVersion ?? "4",
    toolsVersion: (o.toolsversion as string | undefined) ?? "2147483647",
  };
}

function headerSector(capacity: number, gdOffset: number, overhead: number): Uint8Array {
  return VmdkSparseHeaderCodec.encode({
    magic: VMDK_SPARSE_MAGIC,
    version: 3,
    flags: VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS,
    capacity,
    granularity: VMDK_DEFAULT_GRANULARITY,
    descriptorOffset: 1,
    descriptorSize: VMDK_DEFAULT_DESCRIPTOR_SECTORS,
    numGtesPerGt: VMDK_DEFAULT_GTES_PER_GT,
    rgdOffset: 0,
    gdOffset,
    overhead,
    uncleanShutdown: 0,
    singleEndLineChar: 0x0a,
    nonEndLineChar: 0x20,
    doubleEndLineChar1: 0x0d,
    doubleEndLineChar2: 0x0a,
    compressAlgorithm: VMDK_COMPRESSION_DEFLATE,
    pad: new Uint8Array(0),
  });
}

function marker(type: number, sectors: number): Uint8Array {
  const out = new Uint8Array(VMDK_SECTOR_SIZE);
  VmdkMarkerCodec.encode({ value: sectors, size: 0, type }, out, 0);
  return out;
}

async function writeVmdkStream(ctx: SequentialWriteContext): Promise<void> {
  const sp = streamParams(ctx.options);
  const out = ctx.output;
  const size = Math.ceil(ctx.source.size / VMDK_SECTOR_SIZE) * VMDK_SECTOR_SIZE;
  const capacity = size / VMDK_SECTOR_SIZE;
  const grainBytes = VMDK_DEFAULT_GRANULARITY * VMDK_SECTOR_SIZE;
  const gtes = VMDK_DEFAULT_GTES_PER_GT;
  const grains = Math.ceil(capacity / VMDK_DEFAULT_GRANULARITY);
  const gtCount = Math.ceil(grains / gtes);
  if (gtCount > VMDK_MAX_GD_ENTRIES) {
    const why = `Cannot create vmdk image: ${size} bytes need more than ${VMDK_MAX_GD_ENTRIES} grain tables`;
    throw new LimitExceededError(why, { format: "vmdk" });
  }
  const gtBytes = gtes * 4;
  const gdSectors = Math.ceil((gtCount * 4) / VMDK_SECTOR_SIZE);
  const descriptorEnd = 1 + VMDK_DEFAULT_DESCRIPTOR_SECTORS;
  const overhead = Math.ceil(descriptorEnd / VMDK_DEFAULT_GRANULARITY) * VMDK_DEFAULT_GRANULARITY;

  const heads = sp.adapterType === "ide" ? 16 : 255;
  const text = buildVmdkDescriptor({
    cid: randomVmdkCid(),
    parentCid: NO_PARENT_CID,
    createType: "streamOptimized",
    extentLines: [`RW ${capacity} SPARSE "${baseName(ctx.name)}"`],
    hwVersion: sp.hwVersion,
    cylinders: Math.floor(size / (63 * heads * VMDK_SECTOR_SIZE)),
    heads,
    adapterType: sp.adapterType,
    toolsVersion: sp.toolsVersion,
  });
  const descriptor = encodeVmdkDescriptor(text);
  const room = VMDK_DEFAULT_DESCRIPTOR_SECTORS * VMDK_SECTOR_SIZE;
  if (descriptor.length >= room) {
    throw invalid(`The vmdk descriptor (${descriptor.length} bytes) does not fit in its ${room}-byte area`);
  }

  const head = new Uint8Array(overhead * VMDK_SECTOR_SIZE);
  head.set(headerSector(capacity, VMDK_GD_AT_END, overhead), 0);
  head.set(descriptor, VMDK_SECTOR_SIZE);
  await out.write(head);

  const gd = new Uint8Array(gdSectors * VMDK_SECTOR_SIZE);
  const gdv = new DataView(gd.buffer);
  let gtIndex = -1;
  let gt: Uint8Array | undefined;
  const writeTable = async (): Promise<void> => {
    if (!gt) return;
    await out.write(marker(VmdkMarkerType.grainTable, gtBytes / VMDK_SECTOR_SIZE));
    gdv.setUint32(gtIndex * 4, out.position / VMDK_SECTOR_SIZE, true);
    await out.write(gt);
    gt = undefined;
  };
  const skipZeros = ctx.sparseSize > 0;
  const encode = (grain: number, bytes: Uint8Array): Promise<Uint8Array | undefined> => {
    if (skipZeros && ctx.kernel.findNonZero(bytes, 0, bytes.length) === bytes.length) return Promise.resolve(undefined);
    return encodeVmdkCompressedGrain(grain * VMDK_DEFAULT_GRANULARITY, bytes);
  };
  const runs = unitRuns(ctx.source.dataRanges, grainBytes);
  await forEachUnitTransformed(ctx.source, runs, grainBytes, encode, async (grain, _bytes, encoded) => {
    if (!encoded) return;
    const g = Math.floor(grain / gtes);
    if (g !== gtIndex) {
      await writeTable();
      gtIndex = g;
      gt = new Uint8Array(gtBytes);
    }
    const at = out.position / VMDK_SECTOR_SIZE;
    new DataView(gt!.buffer).setUint32((grain % gtes) * 4, at, true);
    await out.write(encoded);
  }, ctx.progress);
  await writeTable();

  await out.write(marker(VmdkMarkerType.grainDirectory, gdSectors));
  const gdOffset = out.position / VMDK_SECTOR_SIZE;
  await out.write(gd);
  await out.write(marker(VmdkMarkerType.footer, 1));
  await out.write(headerSector(capacity, gdOffset, overhead));
  await out.write(marker(VmdkMarkerType.endOfStream, 0));
}

/** The last path component of `name` (the descriptor names the extent file without its folder). */
function baseName(name: string): string {
  const base = name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
  return base === "" || base === "-" ? "disk.vmdk" : base.replace(/"/g, "");
}

/** The vmdk sequential writer: streamOptimized only; grains are always compressed. */
export const vmdkSequentialWriter: SequentialWriter = {
  prepare(options) {
    streamParams(options);
    return { passes: 1 };
  },
  write: writeVmdkStream,
};
