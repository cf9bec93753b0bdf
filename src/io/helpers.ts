/**
 * Helpers on top of {@link IoBackend}: exact reads, reads that zero-fill past the end.
 * @module
 */
import { CorruptImageError, ImageError } from "../errors.js";
import type { IoBackend } from "./backend.js";

/**
 * Reads `length` bytes at `offset`; bytes past the end of the file read as zeros.
 * Returns a new buffer.
 */
export async function readZeroPadded(io: IoBackend, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await readIntoZeroPadded(io, offset, buf);
  return buf;
}

/** Fills `into` from `offset`; the part past the end of the file is zero-filled. */
export async function readIntoZeroPadded(io: IoBackend, offset: number, into: Uint8Array): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const n = await io.read(offset + done, into.subarray(done));
    if (n <= 0) {
      into.fill(0, done);
      return;
    }
    done += n;
  }
}

/**
 * Reads exactly `length` bytes at `offset` or throws a {@link CorruptImageError} naming
 * `structure` when the file ends first. Returns a new buffer.
 */
export async function readExact(
  io: IoBackend,
  offset: number,
  length: number,
  structure: string,
  format?: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await readExactInto(io, offset, buf, structure, format);
  return buf;
}

/** Like {@link readExact} but into the caller's buffer. */
export async function readExactInto(
  io: IoBackend,
  offset: number,
  into: Uint8Array,
  structure: string,
  format?: string,
): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const n = await io.read(offset + done, into.subarray(done));
    if (n <= 0) {
      throw new CorruptImageError(
        `${format ? `Cannot read ${format} image: ` : ""}${structure} at offset ${offset} (${into.length} bytes) extends past the end of the file`,
        { format, structure, fileOffset: offset, file: io.name },
      );
    }
    done += n;
  }
}

/** Throws `ERR_READ_ONLY` when the backend cannot be written. */
export function assertWritable(io: IoBackend): void {
  if (!io.capabilities.writable) {
    throw new ImageError("ERR_READ_ONLY", `${io.name} is open read-only`, { file: io.name });
  }
}
