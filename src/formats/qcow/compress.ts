/**
 * QCOW (v1) compressed clusters: raw deflate streams (no zlib header) that inflate to exactly
 * one cluster.
 * @module
 */
import { deflateSync, inflateSync } from "fflate";
import { CorruptImageError } from "../../errors.js";

/**
 * Inflates `data` into `out` (one cluster). Throws a {@link CorruptImageError} naming
 * `fileOffset` when the stream is damaged or does not fill the cluster exactly.
 */
export function inflateQcowCluster(data: Uint8Array, out: Uint8Array, fileOffset: number): void {
  let got: Uint8Array;
  try {
    got = inflateSync(data, { out });
  } catch (e) {
    throw new CorruptImageError(
      `Cannot read qcow image: compressed cluster at offset ${fileOffset} (${data.length} bytes) is damaged: ${(e as Error).message}`,
      { format: "qcow", structure: "compressed cluster", fileOffset, cause: e },
    );
  }
  if (got.length !== out.length) {
    throw new CorruptImageError(
      `Cannot read qcow image: compressed cluster at offset ${fileOffset} inflates to ${got.length} bytes, expected ${out.length}`,
      { format: "qcow", structure: "compressed cluster", fileOffset },
    );
  }
  if (got !== out && got.buffer !== out.buffer) out.set(got);
}

/**
 * Deflates one cluster. Returns the stream, or `undefined` when it would not be smaller than
 * `maxLength` (the cluster is then stored uncompressed).
 */
export function deflateQcowCluster(cluster: Uint8Array, maxLength: number): Uint8Array | undefined {
  const z = deflateSync(cluster, { level: 6 });
  return z.length < maxLength ? z : undefined;
}
