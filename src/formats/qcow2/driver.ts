/**
 * The qcow2 format driver: probe by magic, open (header checks, feature bits, dirty-image
 * repair), create (with metadata preallocation).
 * @module
 */
import type { CreateContext, FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { CorruptImageError, ImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readQcow2Bitmaps, type Qcow2Bitmap } from "./bitmaps.js";
import { checkQcow2 } from "./check.js";
import { Qcow2ClusterMap } from "./cluster-map.js";
import { QCOW2_CREATE_OPTIONS, createQcow2, qcow2CreateParams } from "./create.js";
import { qcow2Corrupt, qcow2Unsupported } from "./errors.js";
import { QCOW2_MEASURE_OPTIONS, measureQcow2 } from "./measure.js";
import { QCOW2_HDR_OFFSET, qcow2U64Bytes, readQcow2Header, type Qcow2Header } from "./header.js";
import { Qcow2Instance } from "./instance.js";
import {
  QCOW2_AUTOCLEAR_BITMAPS,
  QCOW2_AUTOCLEAR_DATA_FILE_RAW,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DATA_FILE,
  QCOW2_INCOMPAT_DIRTY,
  QCOW2_MAGIC,
  QCOW2_OFLAG_COPIED_HI,
  qcow2OffsetHi,
  qcow2OffsetLo,
} from "./layout.js";
import { Qcow2Refcounts } from "./refcounts.js";
import { qcow2SequentialWriter } from "./sequential-writer.js";
import { readQcow2Snapshots, type Qcow2Snapshot } from "./snapshots.js";
import { QCOW2_AMEND_OPTIONS } from "./amend.js";

/**
 * Opens a qcow2 image. Driver options: `repair=on` allows a writable open of an image marked
 * corrupt, for `check -r` only; `snapshot.name` / `snapshot.id` open an internal snapshot
 * (read-only), as qemu-img's `-l`.
 */
async function openQcow2(ctx: OpenContext): Promise<Qcow2Instance> {
  const file = ctx.file;
  const fileSize = await file.size();
  const header = await readQcow2Header(file, fileSize);

  const readOnly = ctx.readOnly;
  const corrupt = (header.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n;
  const repair = ctx.options.repair === "on";
  if (corrupt && !readOnly && !repair) {
    throw new CorruptImageError(
      "Cannot open qcow2 image for writing: it is marked corrupt (open it read-only, or repair it with check -r all)",
      { format: "qcow2", structure: "header" },
    );
  }
  let snapshots: Qcow2Snapshot[] = [];
  let snapshotTableBytes = 0;
  if (header.nbSnapshots > 0) {
    const t = await readQcow2Snapshots(file, header.snapshotsOffset, header.nbSnapshots, header.clusterSize, fileSize);
    snapshots = t.snapshots;
    snapshotTableBytes = t.byteSize;
  }
  let bitmaps: Qcow2Bitmap[] = [];
  if (header.bitmaps && header.autoclearFeatures & QCOW2_AUTOCLEAR_BITMAPS) {
    bitmaps = await readQcow2Bitmaps(file, header.bitmaps, header.clusterSize, fileSize);
  } else if (header.bitmaps) {
    ctx.warn("qcow2 bitmaps extension is marked inconsistent (autoclear bit clear); ignoring the bitmaps");
  }

  // `snapshot.name` / `snapshot.id` (qemu-img's -l): read an internal snapshot instead.
  const snapName = ctx.options["snapshot.name"];
  const snapId = ctx.options["snapshot.id"];
  let snap: Qcow2Snapshot | undefined;
  if (snapName !== undefined || snapId !== undefined) {
    if (!readOnly) {
      throw new ImageError("ERR_READ_ONLY", "Cannot open a qcow2 snapshot for writing (snapshots open read-only)", { format: "qcow2" });
    }
    snap = snapshots.find((s) => (snapId === undefined || s.id === snapId) && (snapName === undefined || s.name === snapName));
    if (!snap) {
      throw new ImageError("ERR_OPEN_DENIED", `Cannot open qcow2 image: no snapshot ${snapName ?? ""}${snapId !== undefined ? ` (id ${snapId})` : ""}`, {
        format: "qcow2",
      });
    }
  }

  let dataFile: IoBackend | undefined;
  if (header.incompatibleFeatures & QCOW2_INCOMPAT_DATA_FILE) {
    const name = ctx.options["data-file"] ?? header.dataFile;
    if (name === undefined) {
      throw qcow2Unsupported("the image uses an external data file but names none (give the data-file option)");
    }
    if (snapshots.length > 0) throw qcow2Corrupt("an image with an external data file cannot have snapshots", "header", 60);
    dataFile = await ctx.openFile({ name, relativeTo: file, writable: !readOnly, purpose: "data-file" });
  }
  try {
    return await openWith(ctx, header, fileSize, snapshots, snapshotTableBytes, bitmaps, snap, dataFile);
  } catch (e) {
    await dataFile?.close().catch(() => {});
    throw e;
  }
}

async function openWith(
  ctx: OpenContext,
  header: Qcow2Header,
  fileSize: number,
  snapshots: Qcow2Snapshot[],
  snapshotTableBytes: number,
  bitmaps: Qcow2Bitmap[],
  snap: Qcow2Snapshot | undefined,
  dataFile: IoBackend | undefined,
): Promise<Qcow2Instance> {
  const file = ctx.file;
  const readOnly = ctx.readOnly;
  const corrupt = (header.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n;
  const repair = ctx.options.repair === "on";

  let inst: Qcow2Instance | undefined;
  const beforeWrite = () => inst!.beforeWrite();
  const refcounts = await Qcow2Refcounts.open({
    file,
    clusterBits: header.clusterBits,
    refcountOrder: header.refcountOrder,
    table: { offset: header.refcountTableOffset, clusters: header.refcountTableClusters },
    fileSize,
    beforeWrite,
    async writeTableLocation(loc) {
      const b = new Uint8Array(12);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, Math.floor(loc.offset / 4294967296));
      dv.setUint32(4, loc.offset % 4294967296);
      dv.setUint32(8, loc.clusters);
      await file.write(QCOW2_HDR_OFFSET.refcountTableOffset, b);
      header.refcountTableOffset = loc.offset;
      header.refcountTableClusters = loc.clusters;
    },
  });
  const map = await Qcow2ClusterMap.open({
    file,
    clusterBits: header.clusterBits,
    extendedL2: (header.incompatibleFeatures & 0x10n) !== 0n,
    l1TableOffset: snap ? snap.l1TableOffset : header.l1TableOffset,
    l1Size: snap ? snap.l1Size : header.l1Size,
    refcounts: readOnly ? undefined : refcounts,
    beforeWrite,
  });
  inst = new Qcow2Instance({
    file,
    readOnly,
    header,
    map,
    refcounts,
    snapshots,
    snapshotTableBytes,
    bitmaps,
    kernel: ctx.kernel,
    repairOnly: corrupt && repair,
    check: checkQcow2,
    size: snap?.diskSize,
    dataFile,
  });
  if (!readOnly) {
    // Clear the autoclear features vdisk does not maintain before the first write (spec):
    // all but "raw external data", which the driver keeps true (no zero flags, no discard).
    const keep = dataFile ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0n;
    if (header.version >= 3 && (header.autoclearFeatures & ~keep) !== 0n) {
      header.autoclearFeatures &= keep;
      await file.write(QCOW2_HDR_OFFSET.autoclearFeatures, qcow2U64Bytes(header.autoclearFeatures));
      await file.flush();
    }
    if (header.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) {
      ctx.warn("qcow2 image was not closed cleanly (dirty bit set); rebuilding refcounts");
      const r = await inst.check("all");
      if (r.corruptions > 0 || r.checkErrors > 0) {
        throw new CorruptImageError(`Cannot open qcow2 image: repairing the dirty image left ${r.corruptions} corruptions`, {
          format: "qcow2",
        });
      }
    }
  }
  return inst;
}

/** Writes L2 tables and data clusters for the whole disk (preallocation=metadata). */
async function preallocateMetadata(inst: Qcow2Instance): Promise<void> {
  const cs = inst.clusterSize;
  const map = inst.map;
  const total = Math.ceil(inst.size / cs);
  let lastEnd = 0;
  for (let l1i = 0; l1i * map.l2Entries < total; l1i++) {
    const l2 = await map.writableL2(l1i);
    try {
      const n = Math.min(map.l2Entries, total - l1i * map.l2Entries);
      // An external data file holds guest cluster k at offset k * cluster size.
      const host = inst.dataFile ? l1i * map.l2Entries * cs : await inst.allocator.clusters(n);
      for (let k = 0; k < n; k++) {
        const h = host + k * cs;
        map.setEntry(l2.table, k, {
          hi: (QCOW2_OFLAG_COPIED_HI | qcow2OffsetHi(h)) >>> 0,
          lo: qcow2OffsetLo(h),
          bmHi: 0,
          bmLo: inst.extendedL2 ? 0xffffffff : 0,
        });
      }
      map.markEntries(l2, 0, n);
      lastEnd = host + n * cs;
    } finally {
      l2.release();
    }
    await inst.writeBackIfFull();
  }
  // The data clusters read as zeros from the sparse tail.
  const data = inst.dataFile ?? inst.file;
  if ((await data.size()) < lastEnd) await data.truncate(lastEnd);
}

/** The qcow2 driver. */
export const qcow2Driver: FormatDriver = {
  name: "qcow2",
  createOptions: QCOW2_CREATE_OPTIONS,
  amendOptions: QCOW2_AMEND_OPTIONS,
  supportsBacking: true,
  sequentialWriter: qcow2SequentialWriter,
  measure: measureQcow2,
  measureOptions: QCOW2_MEASURE_OPTIONS,
  probe(input: ProbeInput): number {
    const h = input.head;
    if (h.length < 8) return 0;
    const magic = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
    if (magic !== QCOW2_MAGIC) return 0;
    const version = ((h[4] << 24) | (h[5] << 16) | (h[6] << 8) | h[7]) >>> 0;
    return version >= 2 ? 100 : 0;
  },
  open(ctx: OpenContext): Promise<FormatInstance> {
    return openQcow2(ctx);
  },
  async create(ctx: CreateContext): Promise<void> {
    const p = qcow2CreateParams(ctx.options);
    await createQcow2(ctx, p);
    // A raw data file is fully mapped from the start, as qemu-img makes it.
    if (p.preallocation === "metadata" || p.dataFileRaw) {
      const inst = await openQcow2({
        file: ctx.file,
        readOnly: false,
        explicitFormat: true,
        options: {},
        openFile: ctx.openFile,
        kernel: ctx.kernel,
        warn: ctx.warn,
      });
      try {
        await preallocateMetadata(inst);
        await inst.flush();
      } finally {
        if (inst.dataFile) await inst.dataFile.close();
      }
    }
  },
};
