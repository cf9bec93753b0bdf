/**
 * Creating qcow2 images: options with qemu-img's names and defaults (qemu-img 7.2: compat 1.1,
 * 64 KiB clusters, 16-bit refcounts), the initial layout (header, refcount table, refcount
 * blocks, L1 table) and metadata preallocation.
 * @module
 */
import type { CreateContext, CreateOptionSpec } from "../../core/format.js";
import { ImageError } from "../../errors.js";
import { encodeQcow2HeaderCluster, type Qcow2Extension, type Qcow2Header } from "./header.js";
import {
  QCOW2_AUTOCLEAR_DATA_FILE_RAW,
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_COMPRESSION_ZLIB,
  QCOW2_COMPRESSION_ZSTD,
  QCOW2_EXT_BACKING_FORMAT,
  QCOW2_EXT_DATA_FILE,
  QCOW2_EXT_FEATURE_TABLE,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_DATA_FILE,
  QCOW2_INCOMPAT_EXTL2,
  QCOW2_MAX_L1_BYTES,
  QCOW2_V3_HEADER_LENGTH_COMPRESSION,
} from "./layout.js";
import { qcow2SetRefcount } from "./refcounts.js";

/** `-o` options of qcow2 create, as qemu-img names them. */
export const QCOW2_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: "compat", type: "enum", values: ["0.10", "1.1", "v2", "v3"], help: "Compatibility level (v2 [0.10] or v3 [1.1])", defaultText: "1.1" },
  { name: "cluster_size", type: "size", help: "qcow2 cluster size", defaultText: "65536" },
  { name: "preallocation", type: "enum", values: ["off", "metadata"], help: "Preallocation mode (allowed values: off, metadata)", defaultText: "off" },
  { name: "lazy_refcounts", type: "bool", help: "Postpone refcount updates", defaultText: "off" },
  { name: "refcount_bits", type: "number", help: "Width of a reference count entry in bits", defaultText: "16" },
  { name: "compression_type", type: "enum", values: ["zlib", "zstd"], help: "Compression method used for image cluster compression", defaultText: "zlib" },
  { name: "extended_l2", type: "bool", help: "Extended L2 tables", defaultText: "off" },
  { name: "data_file", type: "string", help: "File name of an external data file" },
  { name: "data_file_raw", type: "bool", help: "The external data file must stay valid as a raw image", defaultText: "off" },
];

/** Validated create parameters. */
export interface Qcow2CreateParams {
  version: 2 | 3;
  clusterBits: number;
  refcountOrder: number;
  lazyRefcounts: boolean;
  extendedL2: boolean;
  compressionType: number;
  preallocation: "off" | "metadata";
  /** External data file name. */
  dataFile?: string;
  dataFileRaw: boolean;
}

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message, { format: "qcow2" });
}

/** Checks option values and their combinations the way qemu-img does. */
export function qcow2CreateParams(options: CreateContext["options"]): Qcow2CreateParams {
  const compat = String(options.compat ?? "1.1");
  const version: 2 | 3 = compat === "0.10" || compat === "v2" ? 2 : 3;
  const clusterSize = Number(options.cluster_size ?? 65536);
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    throw invalid("Cluster size must be a power of two between 512 and 2048k");
  }
  const refcountBits = Number(options.refcount_bits ?? 16);
  const refcountOrder = Math.log2(refcountBits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) {
    throw invalid("Refcount width must be a power of two and may not exceed 64 bits");
  }
  const lazyRefcounts = options.lazy_refcounts === true;
  const extendedL2 = options.extended_l2 === true;
  const compressionType = options.compression_type === "zstd" ? QCOW2_COMPRESSION_ZSTD : QCOW2_COMPRESSION_ZLIB;
  if (version === 2) {
    if (lazyRefcounts) throw invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
    if (refcountOrder !== 4) throw invalid("Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
    if (extendedL2) throw invalid("Extended L2 entries are only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
    if (compressionType !== QCOW2_COMPRESSION_ZLIB) throw invalid("Non-zlib compression type is only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
  }
  if (extendedL2 && clusterBits < 14) throw invalid("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
  const preallocation = String(options.preallocation ?? "off");
  if (preallocation !== "off" && preallocation !== "metadata") throw invalid(`Unsupported preallocation mode '${preallocation}'`);
  const dataFile = options.data_file === undefined ? undefined : String(options.data_file);
  const dataFileRaw = options.data_file_raw === true;
  if (dataFile !== undefined && version === 2) throw invalid("External data files are only supported with compatibility level 1.1 and above");
  if (dataFileRaw && dataFile === undefined) throw invalid("data-file-raw requires data-file");
  return { version, clusterBits, refcountOrder, lazyRefcounts, extendedL2, compressionType, preallocation, dataFile, dataFileRaw };
}

/** The feature name table qemu writes into version 3 headers (names are part of the spec). */
export function qcow2FeatureTable(): Uint8Array {
  const names: Array<[number, number, string]> = [
    [0, 0, "dirty bit"],
    [0, 1, "corrupt bit"],
    [0, 2, "external data file"],
    [0, 3, "compression type"],
    [0, 4, "extended L2 entries"],
    [1, 0, "lazy refcounts"],
    [2, 0, "bitmaps"],
    [2, 1, "raw external data"],
  ];
  const out = new Uint8Array(names.length * 48);
  const enc = new TextEncoder();
  names.forEach(([type, bit, name], i) => {
    out[i * 48] = type;
    out[i * 48 + 1] = bit;
    out.set(enc.encode(name).subarray(0, 46), i * 48 + 2);
  });
  return out;
}

/**
 * Writes an empty image: header cluster, refcount table, refcount blocks covering all of
 * them, and a zeroed L1 table big enough for `size`.
 */
export async function createQcow2(ctx: CreateContext, p: Qcow2CreateParams): Promise<void> {
  const cs = 2 ** p.clusterBits;
  const l2Entries = cs / (p.extendedL2 ? 16 : 8);
  const l1Size = Math.ceil(ctx.size / cs / l2Entries);
  if (l1Size * 8 > QCOW2_MAX_L1_BYTES) {
    throw invalid(`Image size ${ctx.size} needs an L1 table larger than 32 MiB with ${cs}-byte clusters (use a larger cluster_size)`);
  }
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const per = (cs * 8) / (1 << p.refcountOrder);
  // header + table + blocks + L1, with the blocks covering all of it
  let blocks = 1;
  let tableClusters = 1;
  for (;;) {
    const total = 1 + tableClusters + blocks + l1Clusters;
    const nb = Math.ceil(total / per);
    const nt = Math.ceil((nb * 8) / cs);
    if (nb === blocks && nt === tableClusters) break;
    blocks = nb;
    tableClusters = nt;
  }
  const tableOffset = cs;
  const blocksOffset = tableOffset + tableClusters * cs;
  const l1Offset = blocksOffset + blocks * cs;
  const total = 1 + tableClusters + blocks + l1Clusters;

  const extensions: Qcow2Extension[] = [];
  const enc = new TextEncoder();
  if (ctx.backing?.format) extensions.push({ type: QCOW2_EXT_BACKING_FORMAT, data: enc.encode(ctx.backing.format) });
  if (p.dataFile !== undefined) {
    if (ctx.backing && p.dataFileRaw) throw invalid("Backing file and data-file-raw cannot be used at the same time");
    extensions.push({ type: QCOW2_EXT_DATA_FILE, data: enc.encode(p.dataFile) });
    const df = await ctx.openFile({ name: p.dataFile, relativeTo: ctx.file, writable: true, create: true, purpose: "data-file" });
    try {
      await df.truncate(ctx.size);
      await df.flush();
    } finally {
      await df.close();
    }
  }
  if (p.version === 3) extensions.push({ type: QCOW2_EXT_FEATURE_TABLE, data: qcow2FeatureTable() });

  let incompat = 0n;
  if (p.compressionType !== QCOW2_COMPRESSION_ZLIB) incompat |= QCOW2_INCOMPAT_COMPRESSION;
  if (p.extendedL2) incompat |= QCOW2_INCOMPAT_EXTL2;
  if (p.dataFile !== undefined) incompat |= QCOW2_INCOMPAT_DATA_FILE;
  const header: Qcow2Header = {
    version: p.version,
    clusterBits: p.clusterBits,
    clusterSize: cs,
    size: ctx.size,
    l1Size,
    l1TableOffset: l1Offset,
    refcountTableOffset: tableOffset,
    refcountTableClusters: tableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: incompat,
    compatibleFeatures: p.lazyRefcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0n,
    autoclearFeatures: p.dataFileRaw ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0n,
    refcountOrder: p.refcountOrder,
    headerLength: p.version === 3 ? QCOW2_V3_HEADER_LENGTH_COMPRESSION : 72,
    compressionType: p.compressionType,
    backingFileOffset: 0,
    backingFileSize: 0,
    backingFile: ctx.backing?.name,
    extensions,
    featureNames: new Map(),
    extraHeaderBytes: new Uint8Array(0),
  };
  let first: Uint8Array;
  try {
    first = encodeQcow2HeaderCluster(header);
  } catch (e) {
    throw invalid((e as Error).message);
  }
  // Structures first, header last: a crash leaves a file that does not open as qcow2.
  const table = new Uint8Array(tableClusters * cs);
  const tdv = new DataView(table.buffer);
  for (let b = 0; b < blocks; b++) {
    const block = new Uint8Array(cs);
    for (let c = b * per; c < Math.min(total, (b + 1) * per); c++) qcow2SetRefcount(block, c - b * per, p.refcountOrder, 1);
    const off = blocksOffset + b * cs;
    await ctx.file.write(off, block);
    tdv.setUint32(b * 8, Math.floor(off / 4294967296));
    tdv.setUint32(b * 8 + 4, off % 4294967296);
  }
  await ctx.file.write(tableOffset, table);
  if (l1Clusters > 0) await ctx.file.write(l1Offset, new Uint8Array(l1Clusters * cs));
  await ctx.file.write(0, first);
  await ctx.file.flush();
}
