/**
 * QCOW (v1) compressed clusters: raw deflate streams (no zlib header) that inflate to exactly
 * one cluster, through the runtime's codecs (`codec/compression.ts`).
 * @module
 */
import { compressionCodecs } from "../../codec/compression.js";
import { CorruptImageError } from "../../errors.js";

/**
 * Inflates `data` into `out` (one cluster). Throws a {@link CorruptImageError} naming
 * `fileOffset` when the stream is damaged or does not fill the cluster exactly.
 */
export async function inflateQcowCluster(data: Uint8Array, out: Uint8Array, fileOffset: number): Promise<void> {
  const got = await compressionCodecs().inflateRaw(data, out);
  if (got < 0) {
    throw new CorruptImageError(
      `Cannot read qcow image: compressed cluster at offset ${fileOffset} (${data.length} bytes) is damaged`,
      { format: "qcow", structure: "compressed cluster", fileOffset },
    );
  }
  if (got !== out.length) {
    throw new CorruptImageError(
      `Cannot read qcow image: compressed cluster at offset ${fileOffset} inflates to ${got} bytes, expected ${out.length}`,
      { format: "qcow", structure: "compressed cluster", fileOffset },
    );
  }
}

/**
 * Deflates one cluster. Returns the stream, or `undefined` when it would not be smaller than
 * `maxLength` (the cluster is then stored uncompressed).
 */
export async function deflateQcowCluster(cluster: Uint8Array, maxLength: number): Promise<Uint8Array | undefined> {
  const z = await compressionCodecs().deflateRaw(cluster, 6);
  return z.length < maxLength ? z : undefined;
}
