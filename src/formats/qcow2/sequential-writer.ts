/**
 * qcow2 into a sink, front to back, never seeking:
 * ```
 * [ header ][ L1 ][ refcount table ][ refcount blocks ][ L2 tables ][ data clusters in guest order ]
 * ```
 * The plan comes from the source's data ranges alone: every guest cluster they touch gets a
 * data cluster, the L2 tables cover exactly the L1 entries with data, the refcount blocks cover
 * the whole file (a fixed point: the blocks count themselves). No data is read before the
 * metadata is written, and the output is what `qemu-img check` calls clean: every cluster
 * referenced once, refcounts 1, COPIED set.
 *
 * Compressed (`-c`): the layout depends on the compressed sizes, which are known only after
 * compressing, while the header and tables come first. So the source is read twice: pass 1
 * compresses every cluster and keeps only its size (a 4-byte entry per data cluster, plus an
 * 8-byte planned offset: 12 bytes per 64 KiB cluster, 0.2 MiB for 1 GiB of data); pass 2 writes
 * the metadata from those sizes, then compresses again and streams the result, checking each
 * size against pass 1 (a source that changed between the passes is an error, not a broken
 * image). All-zero clusters found in pass 1 are left unallocated; clusters that do not
 * compress are stored plain. Compressed clusters are packed at byte offsets as qemu does;
 * plain ones are cluster-aligned.
 * @module
 */
import type { CreateOptionValues } from "../../core/format.js";
import type { SequentialWriteContext, SequentialWriter } from "../../core/sequential-writer.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import { forEachUnit, forEachUnitTransformed, unitRuns, type UnitRun } from "../shared/sequential-units.js";
import { qcow2Compress } from "./compression.js";
import { qcow2CreateParams, qcow2FeatureTable, type Qcow2CreateParams } from "./create.js";
import { encodeQcow2HeaderCluster, type Qcow2Extension, type Qcow2Header } from "./header.js";
import {
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_COMPRESSION_ZLIB,
  QCOW2_EXT_FEATURE_TABLE,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_MAX_L1_BYTES,
  QCOW2_OFLAG_COPIED_HI,
  QCOW2_V3_HEADER_LENGTH_COMPRESSION,
  qcow2CompressedOffsetLimit,
  qcow2EncodeCompressed,
  qcow2OffsetHi,
  qcow2OffsetLo,
} from "./layout.js";
import { qcow2SetRefcount } from "./refcounts.js";

const TWO32 = 4294967296;

function refuse(message: string): UnsupportedFeatureError {
  return new UnsupportedFeatureError(message, { format: "qcow2" });
}

/** The create parameters a stream supports; refuses the rest before anything is written. */
function streamParams(options: CreateOptionValues): Qcow2CreateParams {
  const p = qcow2CreateParams(options);
  if (p.preallocation !== "off") refuseOption("preallocation=metadata");
  if (p.extendedL2) refuseOption("extended_l2=on");
  if (p.dataFile !== undefined) refuseOption("data_file");
  return p;
}

function refuseOption(what: string): never {
  throw new ImageError("ERR_INVALID_OPTION", `Cannot stream qcow2 with ${what}: write to a regular file instead`, {
    format: "qcow2",
  });
}

/** Where each data cluster goes, relative to the start of the data area. */
interface DataPlan {
  /** Guest cluster runs that may hold data, in order. */
  runs: UnitRun[];
  /** Per cluster of `runs` (in order): -1 = stored plain, 0 = all zeros (left out), n = compressed bytes. */
  sizes?: Int32Array;
  /** Per cluster of `runs`: byte offset in the data area (-1 when left out). Absent when all are plain. */
  offsets?: Float64Array;
  /** Clusters of the data area. */
  clusters: number;
  /** Refcount of each data-area cluster (all 1 when absent). */
  refcounts?: Uint32Array;
}

/** The whole file. */
interface Layout {
  cs: number;
  l1Size: number;
  l1Offset: number;
  tableOffset: number;
  tableClusters: number;
  blocksOffset: number;
  blocks: number;
  l2Offset: number;
  /** L1 indices that get an L2 table, in order. */
  l2Indices: number[];
  dataOffset: number;
  totalClusters: number;
  perBlock: number;
}

function planLayout(size: number, p: Qcow2CreateParams, data: DataPlan): Layout {
  const cs = 2 ** p.clusterBits;
  const l2Entries = cs / 8;
  const l1Size = Math.ceil(size / cs / l2Entries);
  if (l1Size * 8 > QCOW2_MAX_L1_BYTES) {
    const why = `Image size ${size} needs an L1 table larger than 32 MiB with ${cs}-byte clusters`;
    throw new ImageError("ERR_INVALID_OPTION", why, { format: "qcow2" });
  }
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const l2Indices: number[] = [];
  for (const [guestCluster] of planned(data)) {
    const l1 = Math.floor(guestCluster / l2Entries);
    if (l2Indices[l2Indices.length - 1] !== l1) l2Indices.push(l1);
  }
  const perBlock = (cs * 8) / (1 << p.refcountOrder);
  const fixed = 1 + l1Clusters + l2Indices.length + data.clusters;
  let blocks = 1;
  let tableClusters = 1;
  for (;;) {
    const total = fixed + tableClusters + blocks;
    const nb = Math.ceil(total / perBlock);
    const nt = Math.ceil((nb * 8) / cs);
    if (nb === blocks && nt === tableClusters) break;
    blocks = Math.max(nb, blocks);
    tableClusters = Math.max(nt, tableClusters);
  }
  const l1Offset = cs;
  const tableOffset = l1Offset + l1Clusters * cs;
  const blocksOffset = tableOffset + tableClusters * cs;
  const l2Offset = blocksOffset + blocks * cs;
  const dataOffset = l2Offset + l2Indices.length * cs;
  const totalClusters = fixed + tableClusters + blocks;
  if (data.offsets && dataOffset + data.clusters * cs > qcow2CompressedOffsetLimit(p.clusterBits)) {
    throw refuse(`Cannot stream compressed qcow2: the image would pass the compressed-cluster offset limit`);
  }
  return {
    cs, l1Size, l1Offset, tableOffset, tableClusters, blocksOffset, blocks, l2Offset, l2Indices, dataOffset, totalClusters,
    perBlock,
  };
}

/** Each guest cluster that is stored, in guest order: `[guestCluster, planIndex]`. */
function* planned(data: DataPlan): Generator<[number, number]> {
  let k = 0;
  for (const r of data.runs) {
    for (let c = r.first; c < r.first + r.count; c++, k++) {
      if (data.sizes && data.sizes[k] === 0) continue;
      yield [c, k];
    }
  }
}

/** Data-area offset of each cluster when every one is stored plain, in order. */
function plainPlan(runs: UnitRun[]): DataPlan {
  let n = 0;
  for (const r of runs) n += r.count;
  return { runs, clusters: n };
}

/** Pass 1 of `-c`: compress every cluster, keep the sizes, pack them into the data area. */
async function compressedPlan(ctx: SequentialWriteContext, p: Qcow2CreateParams, runs: UnitRun[]): Promise<DataPlan> {
  const cs = 2 ** p.clusterBits;
  let n = 0;
  for (const r of runs) n += r.count;
  const sizes = new Int32Array(n);
  let k = 0;
  const sizeOf = async (_c: number, bytes: Uint8Array): Promise<number> => {
    if (ctx.kernel.findNonZero(bytes, 0, bytes.length) === bytes.length) return 0;
    const z = await qcow2Compress(p.compressionType, bytes);
    return z && z.length < cs ? z.length : -1;
  };
  await forEachUnitTransformed(ctx.source, runs, cs, sizeOf, (_c, _b, size) => void (sizes[k++] = size), ctx.progress);
  // Pack: compressed streams at byte offsets, plain clusters aligned. A host cluster's refcount
  // is the number of streams that touch it (qemu counts up to the end of each stream's last
  // sector); a full counter starts a new cluster.
  const maxRef = Math.min(2 ** (1 << p.refcountOrder) - 1, 0xffffffff);
  const offsets = new Float64Array(n).fill(-1);
  const refs: number[] = [];
  let cursor = 0;
  for (let i = 0; i < n; i++) {
    const s = sizes[i];
    if (s === 0) continue;
    if (s < 0) {
      cursor = Math.ceil(cursor / cs) * cs;
      offsets[i] = cursor;
      refs[cursor / cs] = 1;
      cursor += cs;
      continue;
    }
    if (cursor % cs !== 0 && (refs[Math.floor(cursor / cs)] ?? 0) >= maxRef) cursor = Math.ceil(cursor / cs) * cs;
    offsets[i] = cursor;
    const end = Math.ceil((cursor + s) / 512) * 512;
    for (let c = Math.floor(cursor / cs); c <= Math.floor((end - 1) / cs); c++) refs[c] = (refs[c] ?? 0) + 1;
    cursor += s;
  }
  const clusters = Math.ceil(cursor / cs);
  const refcounts = new Uint32Array(clusters);
  for (let c = 0; c < clusters; c++) refcounts[c] = refs[c] ?? 0;
  return { runs, sizes, offsets, clusters, refcounts };
}

function setEntry(view: DataView, at: number, hi: number, lo: number): void {
  view.setUint32(at, hi >>> 0);
  view.setUint32(at + 4, lo >>> 0);
}

function headerCluster(size: number, p: Qcow2CreateParams, l: Layout): Uint8Array {
  const extensions: Qcow2Extension[] = [];
  if (p.version === 3) extensions.push({ type: QCOW2_EXT_FEATURE_TABLE, data: qcow2FeatureTable() });
  const header: Qcow2Header = {
    version: p.version,
    clusterBits: p.clusterBits,
    clusterSize: l.cs,
    size,
    l1Size: l.l1Size,
    l1TableOffset: l.l1Offset,
    refcountTableOffset: l.tableOffset,
    refcountTableClusters: l.tableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: p.compressionType !== QCOW2_COMPRESSION_ZLIB ? QCOW2_INCOMPAT_COMPRESSION : 0n,
    compatibleFeatures: p.lazyRefcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0n,
    autoclearFeatures: 0n,
    refcountOrder: p.refcountOrder,
    headerLength: p.version === 3 ? QCOW2_V3_HEADER_LENGTH_COMPRESSION : 72,
    compressionType: p.compressionType,
    backingFileOffset: 0,
    backingFileSize: 0,
    extensions,
    featureNames: new Map(),
    extraHeaderBytes: new Uint8Array(0),
  };
  return encodeQcow2HeaderCluster(header);
}

/** Writes the metadata: header, L1, refcount table and blocks, L2 tables. */
async function writeMetadata(
  ctx: SequentialWriteContext,
  p: Qcow2CreateParams,
  l: Layout,
  data: DataPlan,
): Promise<void> {
  const cs = l.cs;
  const out = ctx.output;
  await out.write(headerCluster(ctx.source.size, p, l));

  const l1 = new Uint8Array(l.tableOffset - l.l1Offset);
  const l1v = new DataView(l1.buffer);
  l.l2Indices.forEach((i, n) => {
    const at = l.l2Offset + n * cs;
    setEntry(l1v, i * 8, QCOW2_OFLAG_COPIED_HI | qcow2OffsetHi(at), qcow2OffsetLo(at));
  });
  await out.write(l1);

  const table = new Uint8Array(l.tableClusters * cs);
  const tv = new DataView(table.buffer);
  for (let b = 0; b < l.blocks; b++) {
    const at = l.blocksOffset + b * cs;
    setEntry(tv, b * 8, Math.floor(at / TWO32), at % TWO32);
  }
  await out.write(table);

  const metaClusters = l.dataOffset / cs;
  for (let b = 0; b < l.blocks; b++) {
    const block = new Uint8Array(cs);
    const first = b * l.perBlock;
    const end = Math.min(l.totalClusters, first + l.perBlock);
    for (let c = first; c < end; c++) {
      const ref = c < metaClusters ? 1 : data.refcounts ? data.refcounts[c - metaClusters] : 1;
      if (ref) qcow2SetRefcount(block, c - first, p.refcountOrder, ref);
    }
    await out.write(block);
  }

  const l2Entries = cs / 8;
  let table2: Uint8Array | undefined;
  let view2: DataView | undefined;
  let current = -1;
  let plainIndex = 0;
  for (const [c, k] of planned(data)) {
    const l1i = Math.floor(c / l2Entries);
    if (l1i !== current) {
      if (table2) await out.write(table2);
      table2 = new Uint8Array(cs);
      view2 = new DataView(table2.buffer);
      current = l1i;
    }
    const at = (c % l2Entries) * 8;
    if (!data.offsets) {
      const host = l.dataOffset + plainIndex++ * cs;
      setEntry(view2!, at, QCOW2_OFLAG_COPIED_HI | qcow2OffsetHi(host), qcow2OffsetLo(host));
    } else if (data.sizes![k] < 0) {
      const host = l.dataOffset + data.offsets[k];
      setEntry(view2!, at, QCOW2_OFLAG_COPIED_HI | qcow2OffsetHi(host), qcow2OffsetLo(host));
    } else {
      const [hi, lo] = qcow2EncodeCompressed(l.dataOffset + data.offsets[k], data.sizes![k], p.clusterBits);
      setEntry(view2!, at, hi, lo);
    }
  }
  if (table2) await out.write(table2);
}

async function writeQcow2Stream(ctx: SequentialWriteContext): Promise<void> {
  const p = streamParams(ctx.options);
  const cs = 2 ** p.clusterBits;
  const runs = unitRuns(ctx.source.dataRanges, cs);
  const data = ctx.compress ? await compressedPlan(ctx, p, runs) : plainPlan(runs);
  const l = planLayout(ctx.source.size, p, data);
  await writeMetadata(ctx, p, l, data);
  const out = ctx.output;
  const start = out.position;
  if (start !== l.dataOffset) throw new Error(`qcow2 stream: metadata ended at ${start}, planned ${l.dataOffset}`);
  if (!data.offsets) {
    await forEachUnit(ctx.source, runs, cs, (_c, bytes) => out.write(bytes), ctx.progress);
  } else {
    let k = 0;
    let t = 0;
    const compressed = (_c: number, bytes: Uint8Array): Promise<Uint8Array | undefined> => {
      const s = data.sizes![t++];
      return s > 0 ? qcow2Compress(p.compressionType, bytes) : Promise.resolve(undefined);
    };
    await forEachUnitTransformed(ctx.source, runs, cs, compressed, async (_c, bytes, z) => {
      const i = k++;
      const s = data.sizes![i];
      if (s === 0) return;
      const at = l.dataOffset + data.offsets![i];
      if (at > out.position) await out.write(new Uint8Array(at - out.position));
      if (s < 0) return out.write(bytes);
      if (!z || z.length !== s) {
        throw new ImageError(
          "ERR_IO",
          `Cannot stream compressed qcow2: guest cluster ${_c} compressed to ${z?.length ?? 0} bytes in the ` +
            `second pass, ${s} in the first (did the source change?)`,
          { format: "qcow2" },
        );
      }
      await out.write(z);
    }, ctx.progress);
  }
  const end = l.totalClusters * cs;
  if (end > out.position) await out.write(new Uint8Array(end - out.position));
}

/** The qcow2 sequential writer (see the module comment for the layout). */
export const qcow2SequentialWriter: SequentialWriter = {
  prepare(options, compress) {
    const p = streamParams(options);
    // Compressed: pass 1 finds the zero clusters itself.
    return compress ? { passes: 2 } : { passes: 1, zeroScanUnit: 2 ** p.clusterBits };
  },
  write: writeQcow2Stream,
};
