/**
 * VHDX checksums: CRC-32C over a structure with its own checksum field taken as zero.
 * @module
 */
import type { Kernel } from "../../kernel/kernel.js";

/**
 * CRC-32C of `buf` with the 4 bytes at `crcOffset` read as zero. `buf` is left as it was
 * (the field is zeroed for the computation and restored).
 */
export function vhdxChecksum(kernel: Kernel, buf: Uint8Array, crcOffset: number): number {
  const saved = buf.slice(crcOffset, crcOffset + 4);
  buf.fill(0, crcOffset, crcOffset + 4);
  const crc = kernel.crc32c(buf);
  buf.set(saved, crcOffset);
  return crc;
}

/** Computes the checksum of `buf` and stores it little-endian at `crcOffset`. */
export function vhdxSetChecksum(kernel: Kernel, buf: Uint8Array, crcOffset: number): void {
  buf.fill(0, crcOffset, crcOffset + 4);
  const crc = kernel.crc32c(buf);
  new DataView(buf.buffer, buf.byteOffset + crcOffset, 4).setUint32(0, crc, true);
}

/** The checksum stored little-endian at `crcOffset`. */
export function vhdxStoredChecksum(buf: Uint8Array, crcOffset: number): number {
  return new DataView(buf.buffer, buf.byteOffset + crcOffset, 4).getUint32(0, true);
}
