/**
 * Reading and validating a QCOW (v1) header, in the order QEMU checks it, so the first problem
 * reported is the one qemu-img reports (its wording is kept inside vdisk's messages).
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
import { readExact } from "../../io/helpers.js";
import {
  QCOW_CRYPT_AES,
  QCOW_CRYPT_NONE,
  QCOW_HEADER,
  QCOW_HEADER_SIZE,
  QCOW_MAGIC,
  QCOW_MAX_BACKING_NAME,
  QCOW_MAX_CLUSTER_BITS,
  QCOW_MAX_L1_BYTES,
  QCOW_MAX_L2_BITS,
  QCOW_MIN_CLUSTER_BITS,
  QCOW_MIN_L2_BITS,
  QCOW_VERSION,
  qcowGeometry,
  type QcowGeometry,
  type QcowHeader,
} from "./layout.js";
import { u64Hex } from "../shared/u64-hex.js";

/** A validated header with what follows from it. */
export interface QcowLayout {
  readonly header: QcowHeader;
  readonly geometry: QcowGeometry;
  /** Virtual size: the header's size rounded down to 512, as QEMU uses it. */
  readonly size: number;
  /** The backing file name, if the image names one. */
  readonly backingName?: string;
}

const PREFIX = "Cannot open qcow image: ";

function details(structure: string, fileOffset?: number): ImageErrorDetails {
  return { format: "qcow", structure, fileOffset };
}

/**
 * Reads and validates the header of the QCOW image in `file` (`fileSize` bytes long). Throws
 * an {@link ImageError}: `ERR_NOT_AN_IMAGE`, `ERR_CORRUPT_IMAGE`, `ERR_UNSUPPORTED_FEATURE`
 * (other versions, AES encryption) or `ERR_LIMIT_EXCEEDED`.
 */
export async function readQcowLayout(file: IoBackend, fileSize: number): Promise<QcowLayout> {
  if (fileSize < QCOW_HEADER_SIZE) {
    throw new CorruptImageError(
      `${PREFIX}the header (${QCOW_HEADER_SIZE} bytes) extends past the end of the file (${fileSize} bytes)`,
      details("header", 0),
    );
  }
  const raw = await readExact(file, 0, QCOW_HEADER_SIZE, "header", "qcow");
  const h = QCOW_HEADER.decode(raw, 0, { u64Overflow: "infinity" });
  const hex = (name: "size" | "l1TableOffset" | "backingFileOffset") => u64Hex(raw, QCOW_HEADER.offsetOf(name), false);

  if (h.magic !== QCOW_MAGIC) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `${PREFIX}Image not in qcow format (magic 0x${h.magic.toString(16)})`, details("header", 0));
  }
  if (h.version !== QCOW_VERSION) {
    const hint = h.version === 2 || h.version === 3 ? "; open it as qcow2" : "";
    throw new UnsupportedFeatureError(`${PREFIX}qcow (v1) does not support qcow version ${h.version}${hint}`, details("header", 4));
  }
  if (h.size <= 1) {
    throw new CorruptImageError(`${PREFIX}Image size is too small (must be at least 2 bytes, found ${h.size})`, details("header", 24));
  }
  if (h.clusterBits < QCOW_MIN_CLUSTER_BITS || h.clusterBits > QCOW_MAX_CLUSTER_BITS) {
    throw new CorruptImageError(
      `${PREFIX}Cluster size must be between 512 and 64k (cluster_bits is ${h.clusterBits}, expected 9 to 16)`,
      details("header", 32),
    );
  }
  if (h.l2Bits < QCOW_MIN_L2_BITS || h.l2Bits > QCOW_MAX_L2_BITS) {
    throw new CorruptImageError(
      `${PREFIX}L2 table size must be between 512 and 64k (l2_bits is ${h.l2Bits}, expected 6 to 13)`,
      details("header", 33),
    );
  }
  if (h.cryptMethod === QCOW_CRYPT_AES) {
    throw new UnsupportedFeatureError(
      `${PREFIX}AES-encrypted qcow images are not supported (convert it with qemu-img to an unencrypted or LUKS image)`,
      details("header", 36),
    );
  }
  if (h.cryptMethod !== QCOW_CRYPT_NONE) {
    throw new CorruptImageError(`${PREFIX}invalid encryption method ${h.cryptMethod} in qcow header`, details("header", 36));
  }
  if (!Number.isFinite(h.size)) {
    throw new LimitExceededError(`${PREFIX}Image too large: virtual size ${hex("size")} exceeds 2^53 bytes`, details("header", 24));
  }
  const size = h.size - (h.size % 512);
  const geometry = qcowGeometry(size, h.clusterBits, h.l2Bits);
  const l1Bytes = geometry.l1Entries * 8;
  if (l1Bytes > QCOW_MAX_L1_BYTES) {
    throw new LimitExceededError(
      `${PREFIX}Image too large: L1 table of ${formatBytes(l1Bytes)} exceeds the limit of ${formatBytes(QCOW_MAX_L1_BYTES)}`,
      details("L1 table", 40),
    );
  }
  if (h.l1TableOffset < QCOW_HEADER_SIZE || h.l1TableOffset + l1Bytes > fileSize) {
    const at = Number.isFinite(h.l1TableOffset) ? String(h.l1TableOffset) : hex("l1TableOffset");
    throw new CorruptImageError(
      `${PREFIX}L1 table at offset ${at} (${l1Bytes} bytes) lies outside the file (${fileSize} bytes, header ${QCOW_HEADER_SIZE})`,
      details("L1 table", 40),
    );
  }
  let backingName: string | undefined;
  if (h.backingFileOffset !== 0) {
    const len = h.backingFileSize;
    if (len > QCOW_MAX_BACKING_NAME) {
      throw new CorruptImageError(
        `${PREFIX}Backing file name too long (${len} bytes, the limit is ${QCOW_MAX_BACKING_NAME})`,
        details("backing file name", 16),
      );
    }
    if (h.backingFileOffset + len > fileSize) {
      const at = Number.isFinite(h.backingFileOffset) ? String(h.backingFileOffset) : hex("backingFileOffset");
      throw new CorruptImageError(
        `${PREFIX}backing file name at offset ${at} (${len} bytes) extends past the end of the file (${fileSize} bytes)`,
        details("backing file name", 8),
      );
    }
    const bytes = await readExact(file, h.backingFileOffset, len, "backing file name", "qcow");
    const nul = bytes.indexOf(0);
    const name = new TextDecoder().decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
    if (name.length > 0) backingName = name;
  }
  return { header: h, geometry, size, backingName };
}
