/**
 * Compressed clusters: raw deflate (compression_type zlib) or one zstd frame, through the
 * runtime's codecs (`codec/compression.ts`: node:zlib in Node and Deno, JavaScript elsewhere). A
 * compressed stream is followed by unrelated bytes (the rest of its last sector, the next
 * stream), so decoding stops once a whole cluster has been produced.
 * @module
 */
import { compressionCodecs } from "../../codec/compression.js";
import { ZSTD_DEFAULT_LEVEL } from "../../codec/zstd-encoder.js";
import { QCOW2_COMPRESSION_ZLIB, QCOW2_COMPRESSION_ZSTD } from "./layout.js";

/** A zstd encoder that replaces the built-in one (tests; callers with their own zstd build). */
export type Qcow2ZstdEncoder = (data: Uint8Array) => Uint8Array;

let zstdEncoder: Qcow2ZstdEncoder | undefined;

/**
 * Installs an encoder used for compressed writes to zstd images instead of the built-in one
 * (`undefined` restores the built-in one).
 */
export function setQcow2ZstdEncoder(encoder: Qcow2ZstdEncoder | undefined): void {
  zstdEncoder = encoder;
}

/**
 * Length of the zstd frame at the start of `src` (walking the frame header and block headers),
 * or -1 when it is not a complete frame.
 */
export function zstdFrameLength(src: Uint8Array): number {
  if (src.length < 6) return -1;
  const magic = src[0] | (src[1] << 8) | (src[2] << 16) | (src[3] << 24);
  if (magic >>> 0 !== 0xfd2fb528) return -1;
  const fhd = src[4];
  const fcsFlag = fhd >>> 6;
  const single = (fhd >>> 5) & 1;
  const checksum = (fhd >>> 2) & 1;
  const didFlag = fhd & 3;
  let pos = 5 + (single ? 0 : 1) + [0, 1, 2, 4][didFlag] + [single ? 1 : 0, 2, 4, 8][fcsFlag];
  for (;;) {
    if (pos + 3 > src.length) return -1;
    const bh = src[pos] | (src[pos + 1] << 8) | (src[pos + 2] << 16);
    const last = bh & 1;
    const type = (bh >>> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) return -1;
    pos += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  pos += checksum ? 4 : 0;
  return pos <= src.length ? pos : -1;
}

/**
 * Decodes one compressed cluster from `src` into all of `out`. Resolves false when the stream is
 * invalid or produces fewer bytes than `out` holds.
 */
export async function qcow2Decompress(type: number, src: Uint8Array, out: Uint8Array): Promise<boolean> {
  const codecs = compressionCodecs();
  if (type === QCOW2_COMPRESSION_ZLIB) return (await codecs.inflateRaw(src, out)) >= out.length;
  if (type === QCOW2_COMPRESSION_ZSTD) {
    const n = zstdFrameLength(src);
    if (n < 0) return false;
    return (await codecs.zstdDecompress(src.subarray(0, n), out)) >= out.length;
  }
  return false;
}

/**
 * Compresses one cluster. Returns `undefined` for an unknown `type`, so the caller stores the
 * cluster uncompressed. zstd loads its Wasm library on first use (where no native zstd exists).
 */
export async function qcow2Compress(type: number, data: Uint8Array): Promise<Uint8Array | undefined> {
  if (type === QCOW2_COMPRESSION_ZLIB) return compressionCodecs().deflateRaw(data, 6);
  if (type === QCOW2_COMPRESSION_ZSTD) {
    return zstdEncoder ? zstdEncoder(data) : compressionCodecs().zstdCompress(data, ZSTD_DEFAULT_LEVEL);
  }
  return undefined;
}
