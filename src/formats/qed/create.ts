/**
 * Creating QED images as `qemu-img create -f qed` does: a one-cluster header holding the
 * backing file name, then an empty L1 table.
 * @module
 */
import type { CreateContext, CreateOptionSpec } from "../../core/format.js";
import { ImageError } from "../../errors.js";
import {
  QED_DEFAULT_CLUSTER_SIZE,
  QED_DEFAULT_TABLE_SIZE,
  QED_F_BACKING_FILE,
  QED_F_BACKING_FORMAT_NO_PROBE,
  QED_HEADER,
  QED_HEADER_SIZE,
  QED_MAGIC,
  QED_MAX_BACKING_NAME,
  QED_MAX_CLUSTER_SIZE,
  QED_MAX_TABLE_SIZE,
  QED_MIN_CLUSTER_SIZE,
  QED_MIN_TABLE_SIZE,
  qedFeatureBytes,
  qedMaxImageSize,
  qedPowerOfTwoIn,
  type QedHeader,
} from "./layout.js";

/** `-o` options of `create -f qed` (qemu-img's). */
export const QED_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: "cluster_size", type: "size", help: "Cluster size (in bytes)", defaultText: "65536" },
  { name: "table_size", type: "size", help: "L1/L2 table size (in clusters)", defaultText: "4" },
];

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message);
}

/** Writes a new, empty QED image into `ctx.file`. */
export async function createQed(ctx: CreateContext): Promise<void> {
  const clusterSize = Number(ctx.options.cluster_size ?? QED_DEFAULT_CLUSTER_SIZE);
  const tableSize = Number(ctx.options.table_size ?? QED_DEFAULT_TABLE_SIZE);
  if (!qedPowerOfTwoIn(clusterSize, QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE)) {
    throw invalid(`QED cluster size must be a power of two from ${QED_MIN_CLUSTER_SIZE} to ${QED_MAX_CLUSTER_SIZE} (got ${clusterSize})`);
  }
  if (!qedPowerOfTwoIn(tableSize, QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE)) {
    throw invalid(`QED table size must be a power of two from ${QED_MIN_TABLE_SIZE} to ${QED_MAX_TABLE_SIZE} clusters (got ${tableSize})`);
  }
  const size = Math.ceil(ctx.size / 512) * 512;
  const max = qedMaxImageSize(clusterSize, tableSize);
  if (size > max) {
    throw invalid(`QED image size ${size} exceeds the maximum of ${max} bytes for cluster_size ${clusterSize} and table_size ${tableSize}`);
  }
  const name = ctx.backing ? new TextEncoder().encode(ctx.backing.name) : new Uint8Array(0);
  if (name.length > Math.min(QED_MAX_BACKING_NAME, clusterSize - QED_HEADER_SIZE)) {
    throw invalid(`Cannot create qed image: backing file name of ${name.length} bytes does not fit in the header cluster`);
  }
  let features = 0n;
  if (ctx.backing) {
    features |= QED_F_BACKING_FILE;
    if (ctx.backing.format === "raw") features |= QED_F_BACKING_FORMAT_NO_PROBE;
  }
  const header: QedHeader = {
    magic: QED_MAGIC,
    clusterSize,
    tableSize,
    headerSize: 1,
    features: qedFeatureBytes(features),
    compatFeatures: new Uint8Array(8),
    autoclearFeatures: new Uint8Array(8),
    l1TableOffset: clusterSize,
    imageSize: size,
    backingFilenameOffset: ctx.backing ? QED_HEADER_SIZE : 0,
    backingFilenameSize: name.length,
  };
  const head = new Uint8Array(QED_HEADER_SIZE + name.length);
  QED_HEADER.encode(header, head);
  head.set(name, QED_HEADER_SIZE);
  // Header cluster plus an all-zero L1 table.
  await ctx.file.truncate(clusterSize * (1 + tableSize));
  await ctx.file.write(0, head);
  await ctx.file.flush();
}
