/**
 * Converting an image into a `Blob` (browser downloads), through the streaming writers.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import { convertToStream, type ConvertToStreamOptions } from "./convert-to-stream.js";

/** Options of {@link convertToBlob}: those of {@link convertToStream}, plus the Blob's type. */
export interface ConvertToBlobOptions extends ConvertToStreamOptions {
  /** MIME type of the Blob (default `application/octet-stream`). */
  type?: string;
}

/**
 * Writes `source` as an image of `options.format` into a new `Blob`. Memory: the output's
 * chunks (about 1 MiB each) are collected and handed to the Blob, which the runtime may keep
 * off the JavaScript heap; nothing beyond the output is held. Rejects as {@link convertToStream}.
 */
export async function convertToBlob(source: BlockDevice, options: ConvertToBlobOptions): Promise<Blob> {
  const parts: Uint8Array[] = [];
  const sink = new WritableStream<Uint8Array>({
    write(chunk) {
      parts.push(chunk);
    },
  });
  await convertToStream(source, sink, options);
  return new Blob(parts as BlobPart[], { type: options.type ?? "application/octet-stream" });
}
