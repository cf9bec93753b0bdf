/**
 * Reading, validating and rewriting the QED header. Checks run in QEMU's order and keep
 * qemu-img's wording inside vdisk's messages, with the value found and the bound expected.
 *
 * One deliberate difference: QEMU 7.2 rejects every image with `table_size = 1` ("QED table
 * offset is invalid") because its table-offset check mistakes a one-cluster table for an
 * overflow. The specification allows such tables; vdisk checks the actual table extent.
 * @module
 */
import {
  CorruptImageError,
  ImageError,
  LimitExceededError,
  UnsupportedFeatureError,
  formatBytes,
  type ImageErrorDetails,
} from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact, readZeroPadded } from "../../io/helpers.js";
import {
  QED_F_BACKING_FILE,
  QED_F_BACKING_FORMAT_NO_PROBE,
  QED_FEATURE_MASK,
  QED_HEADER,
  QED_HEADER_SIZE,
  QED_MAGIC,
  QED_MAX_BACKING_NAME,
  QED_MAX_CLUSTER_SIZE,
  QED_MAX_TABLE_BYTES,
  QED_MAX_TABLE_SIZE,
  QED_MIN_CLUSTER_SIZE,
  QED_MIN_TABLE_SIZE,
  qedGeometry,
  qedFeatureBits,
  qedMaxImageSize,
  qedPowerOfTwoIn,
  type QedGeometry,
  type QedHeader,
} from "./layout.js";
import { u64Hex } from "../shared/u64-hex.js";

/** A validated header with what follows from it. */
export interface QedLayout {
  readonly header: QedHeader;
  readonly geometry: QedGeometry;
  readonly backingName?: string;
  /** `raw` when the header forbids probing the backing file. */
  readonly backingFormat?: string;
}

const PREFIX = "Cannot open qed image: ";

function at(structure: string, fileOffset: number): ImageErrorDetails {
  return { format: "qed", structure, fileOffset };
}

/**
 * True when a table of `tableBytes` at `offset` lies in whole clusters after the header and
 * inside the first `fileClusters` bytes (the file length rounded down to whole clusters).
 */
export function qedTableOffsetValid(geo: QedGeometry, offset: number, fileClusters: number): boolean {
  return Number.isFinite(offset) && offset % geo.clusterSize === 0 && offset >= geo.headerBytes &&
    offset + geo.tableBytes <= fileClusters;
}

/** True when a data cluster at `offset` lies after the header and inside the file. */
export function qedClusterOffsetValid(geo: QedGeometry, offset: number, fileClusters: number): boolean {
  return Number.isFinite(offset) && offset % geo.clusterSize === 0 && offset >= geo.headerBytes &&
    offset + geo.clusterSize <= fileClusters;
}

/**
 * Reads and validates the header of the QED image in `file` (`fileSize` bytes long). Throws an
 * {@link ImageError}: `ERR_NOT_AN_IMAGE`, `ERR_CORRUPT_IMAGE`, `ERR_UNSUPPORTED_FEATURE` or
 * `ERR_LIMIT_EXCEEDED`.
 */
export async function readQedLayout(file: IoBackend, fileSize: number): Promise<QedLayout> {
  // Past the end of a short file the header reads as zeros (as QEMU reads it), so the first
  // check that fails names the field.
  const raw = await readZeroPadded(file, 0, QED_HEADER_SIZE);
  const h = QED_HEADER.decode(raw, 0, { u64Overflow: "infinity" });
  const hex = (name: "l1TableOffset" | "imageSize") => u64Hex(raw, QED_HEADER.offsetOf(name), true);
  const features = qedFeatureBits(h.features);

  if (h.magic !== QED_MAGIC) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `${PREFIX}Image not in QED format (magic 0x${h.magic.toString(16)})`, at("header", 0));
  }
  const unknown = features & ~QED_FEATURE_MASK;
  if (unknown !== 0n) {
    throw new UnsupportedFeatureError(`${PREFIX}Unsupported QED features: 0x${unknown.toString(16)}`, at("header", 16));
  }
  if (!qedPowerOfTwoIn(h.clusterSize, QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE)) {
    throw new CorruptImageError(
      `${PREFIX}QED cluster size is invalid (${h.clusterSize}; expected a power of two from ${QED_MIN_CLUSTER_SIZE} to ${QED_MAX_CLUSTER_SIZE})`,
      at("header", 4),
    );
  }
  if (!qedPowerOfTwoIn(h.tableSize, QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE)) {
    throw new CorruptImageError(
      `${PREFIX}QED table size is invalid (${h.tableSize} clusters; expected a power of two from ${QED_MIN_TABLE_SIZE} to ${QED_MAX_TABLE_SIZE})`,
      at("header", 8),
    );
  }
  const maxSize = qedMaxImageSize(h.clusterSize, h.tableSize);
  if (!Number.isFinite(h.imageSize) || h.imageSize % 512 !== 0 || h.imageSize > maxSize) {
    const shown = Number.isFinite(h.imageSize) ? String(h.imageSize) : hex("imageSize");
    throw new CorruptImageError(
      `${PREFIX}QED image size is invalid (${shown}; expected a multiple of 512 up to ${Math.min(maxSize, Number.MAX_SAFE_INTEGER)})`,
      at("header", 48),
    );
  }
  const geo = qedGeometry(h.clusterSize, h.tableSize, h.headerSize);
  if (geo.tableBytes > QED_MAX_TABLE_BYTES) {
    throw new LimitExceededError(
      `${PREFIX}QED tables of ${formatBytes(geo.tableBytes)} exceed the limit of ${formatBytes(QED_MAX_TABLE_BYTES)}`,
      at("header", 8),
    );
  }
  const fileClusters = fileSize - (fileSize % h.clusterSize);
  if (!qedTableOffsetValid(geo, h.l1TableOffset, fileClusters)) {
    const shown = Number.isFinite(h.l1TableOffset) ? String(h.l1TableOffset) : hex("l1TableOffset");
    throw new CorruptImageError(
      `${PREFIX}QED table offset is invalid (L1 table at ${shown}, ${geo.tableBytes} bytes: it must be cluster-aligned, ` +
        `after the ${geo.headerBytes}-byte header and inside the file's ${fileClusters} bytes of whole clusters)`,
      at("header", 40),
    );
  }
  if (h.headerSize === 0 || geo.headerBytes > 0xffffffff) {
    throw new CorruptImageError(
      `${PREFIX}QED header size is ${h.headerSize === 0 ? "invalid" : "too large"} (${h.headerSize} clusters)`,
      at("header", 12),
    );
  }
  let backingName: string | undefined;
  let backingFormat: string | undefined;
  if ((features & QED_F_BACKING_FILE) !== 0n) {
    const off = h.backingFilenameOffset;
    const len = h.backingFilenameSize;
    if (off + len > geo.headerBytes) {
      throw new CorruptImageError(
        `${PREFIX}QED backing filename offset is invalid (${len} bytes at ${off} end past the ${geo.headerBytes}-byte header)`,
        at("header", 56),
      );
    }
    if (len > QED_MAX_BACKING_NAME) {
      throw new LimitExceededError(
        `${PREFIX}Failed to read backing filename: ${len} bytes exceed the limit of ${QED_MAX_BACKING_NAME}`,
        at("header", 60),
      );
    }
    const bytes = await readExact(file, off, len, "backing file name", "qed");
    const nul = bytes.indexOf(0);
    const name = new TextDecoder().decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
    if (name.length > 0) backingName = name;
    if ((features & QED_F_BACKING_FORMAT_NO_PROBE) !== 0n) backingFormat = "raw";
  }
  return { header: h, geometry: geo, backingName, backingFormat };
}

/**
 * Rewrites the 64-byte header in place (the backing name and anything else in the header
 * clusters are left untouched).
 */
export async function writeQedHeader(file: IoBackend, header: QedHeader): Promise<void> {
  await file.write(0, QED_HEADER.encode(header));
}
