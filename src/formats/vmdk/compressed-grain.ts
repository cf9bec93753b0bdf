/**
 * Compressed grains of stream-optimized extents: decoding (zlib-wrapped deflate as VMware and
 * QEMU write it, raw deflate tolerated) and encoding with a grain marker.
 * @module
 */
import { compressionCodecs, inflateZlib } from "../../codec/compression.js";
import { VMDK_SECTOR_SIZE, VmdkGrainMarkerCodec } from "./layout.js";

/**
 * Inflates one grain from `src` into `out` (at most `out.length` bytes are produced; bytes after
 * the stream are ignored). Returns the number of bytes produced, or -1 when the data is not a
 * valid deflate stream.
 */
export function inflateVmdkGrain(src: Uint8Array, out: Uint8Array): Promise<number> {
  return inflateZlib(src, out);
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
