/**
 * Error helpers of the qcow2 driver: every message names the action, the structure and the
 * value found.
 * @module
 */
import { CorruptImageError, LimitExceededError, UnsupportedFeatureError } from "../../errors.js";

/** A corruption found while opening or reading: "Cannot open qcow2 image: ...". */
export function qcow2Corrupt(message: string, structure: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open qcow2 image: ${message}`, { format: "qcow2", structure, fileOffset });
}

/** Corruption found while reading or writing an open image. */
export function qcow2CorruptIo(action: string, message: string, structure: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot ${action} qcow2 image: ${message}`, { format: "qcow2", structure, fileOffset });
}

/** A header field beyond a safety limit. */
export function qcow2Limit(message: string, structure: string, fileOffset?: number): LimitExceededError {
  return new LimitExceededError(`Cannot open qcow2 image: ${message}`, { format: "qcow2", structure, fileOffset });
}

/** A feature vdisk does not implement. */
export function qcow2Unsupported(message: string, structure = "header"): UnsupportedFeatureError {
  return new UnsupportedFeatureError(`Cannot open qcow2 image: ${message}`, { format: "qcow2", structure });
}

/** Formats an offset for messages. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
