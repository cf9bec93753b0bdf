/**
 * The error family of vdisk. Every problem found in an image is an {@link ImageError} with a
 * stable string `code`; argument mistakes are plain `TypeError`/`RangeError`.
 * @module
 */

/** Stable error codes. Scripts may rely on these strings; never rename one. */
export type ImageErrorCode =
  | "ERR_CORRUPT_IMAGE"
  | "ERR_UNSUPPORTED_FEATURE"
  | "ERR_NOT_AN_IMAGE"
  | "ERR_UNKNOWN_FORMAT"
  | "ERR_READ_ONLY"
  | "ERR_OPEN_DENIED"
  | "ERR_IMAGE_FULL"
  | "ERR_OUT_OF_RANGE"
  | "ERR_LIMIT_EXCEEDED"
  | "ERR_IO"
  | "ERR_INVALID_OPTION"
  | "ERR_CLOSED";

/** Where in an image a problem was found. All fields are optional. */
export interface ImageErrorDetails {
  /** Format driver name, e.g. `qcow2`. */
  format?: string;
  /** The on-disk structure, e.g. `L1 table`, `header`. */
  structure?: string;
  /** Byte offset in the image file where the bad value lives. */
  fileOffset?: number;
  /** File name or other label of the image. */
  file?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Base class of every error vdisk raises about an image. `message` is one sentence naming the
 * action, the structure and the value found; `code` is stable.
 */
export class ImageError extends Error {
  readonly code: ImageErrorCode;
  readonly format?: string;
  readonly structure?: string;
  readonly fileOffset?: number;
  file?: string;

  constructor(code: ImageErrorCode, message: string, details: ImageErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "ImageError";
    this.code = code;
    this.format = details.format;
    this.structure = details.structure;
    this.fileOffset = details.fileOffset;
    this.file = details.file;
  }
}

/** Metadata is inconsistent or out of bounds. Writes to the image are refused afterwards. */
export class CorruptImageError extends ImageError {
  constructor(message: string, details: ImageErrorDetails = {}) {
    super("ERR_CORRUPT_IMAGE", message, details);
    this.name = "CorruptImageError";
  }
}

/** The image uses a feature vdisk does not implement (encryption, an unknown incompatible bit…). */
export class UnsupportedFeatureError extends ImageError {
  constructor(message: string, details: ImageErrorDetails = {}) {
    super("ERR_UNSUPPORTED_FEATURE", message, details);
    this.name = "UnsupportedFeatureError";
  }
}

/** A header field exceeds a safety limit (table sizes, chain depth…). */
export class LimitExceededError extends ImageError {
  constructor(message: string, details: ImageErrorDetails = {}) {
    super("ERR_LIMIT_EXCEEDED", message, details);
    this.name = "LimitExceededError";
  }
}

/** Formats a byte count the way messages show it: `3 GiB`, `512 KiB`, `1000 bytes`. */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1 && Number.isFinite(v)) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${n} bytes`;
  const s = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, "");
  return `${s} ${units[i]}`;
}

/** True when `e` is an {@link ImageError} (also across realms, by duck typing on `code`). */
export function isImageError(e: unknown): e is ImageError {
  return e instanceof ImageError ||
    (typeof e === "object" && e !== null && (e as { name?: unknown }).name === "ImageError" &&
      typeof (e as { code?: unknown }).code === "string");
}
