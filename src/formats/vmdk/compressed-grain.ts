/**
 * Compressed grains of stream-optimized extents: decoding (zlib-wrapped deflate as VMware and
 * QEMU write it, raw deflate tolerated) and encoding with a grain marker.
 * @module
 */
import { compressionCodecs } from "../../codec/compression.js";
import { VMDK_SECTOR_SIZE, VmdkGrainMarkerCodec } from "./layout.js";

/** True when `src` starts with a zlib header (deflate, no preset dictionary). */
function hasZlibHeader(src: Uint8Array): boolean {
  if (src.length < 2) return false;
  const cmf = src[0];
  const flg = src[1];
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 === 0 && (flg & 0x20) === 0;
}

/**
 * Inflates one grain from `src` into `out` (at most `out.length` bytes are produced; bytes after
 * the stream are ignored). Returns the number of bytes produced, or -1 when the data is not a
 * valid deflate stream.
 */
export function inflateVmdkGrain(src: Uint8Array, out: Uint8Array): Promise<number> {
  const body = hasZlibHeader(src) ? src.subarray(2) : src;
  return compressionCodecs().inflateRaw(body, out);
}

/**
 * One grain as a stream stores it: the grain marker (`lba` = the grain's first sector in the
 * extent, `size` = compressed bytes), the zlib data, and zeros up to a whole sector.
 */
export async function encodeVmdkCompressedGrain(lbaSectors: number, data: Uint8Array): Promise<Uint8Array> {
  const z = await compressionCodecs().deflateZlib(data, 6);
  const head = VmdkGrainMarkerCodec.size;
  const total = Math.ceil((head + z.length) / VMDK_SECTOR_SIZE) * VMDK_SECTOR_SIZE;
  const out = new Uint8Array(total);
  VmdkGrainMarkerCodec.encode({ lba: lbaSectors, size: z.length }, out, 0);
  out.set(z, head);
  return out;
}
