/**
 * `openImage`/`createImage` for Node: paths, `http(s)://` URLs and backends, with backing files
 * opened next to the image (under the policy); and the codecs Node installs. The entry
 * (`src/node.ts`) and the CLI share this module; only they install anything.
 * @module
 */
import { createImageOn, openImageOn, type CreateImageOptions, type OpenImageOptions } from "../../ops/open.js";
import type { BlockDevice } from "../../core/block-device.js";
import type { IoBackend } from "../../io/backend.js";
import { HttpBackend, type HttpBackendOptions } from "../../io/http-backend.js";
import { httpAwareOpener, isHttpUrl } from "../../io/http-opener.js";
import { setCompressionCodecs, setZstdEncoder } from "../../codec/compression.js";
import { loadZstdCompressor } from "../../codec/zstd-encoder.js";
import { nodeCompressionCodecs } from "./compression.js";
import { NodeFileBackend } from "./file-backend.js";
import { nodeFileOpener } from "./opener.js";

/**
 * Installs zlib's native code (on the thread pool) for every compressed cluster and grain, and
 * the Wasm zstd encoder where this runtime's zlib has no zstd (Node < 22.15). Idempotent.
 */
export function installNodeCodecs(): void {
  setCompressionCodecs(nodeCompressionCodecs());
  setZstdEncoder(loadZstdCompressor);
}

/** A path, an `http(s)://` URL (a string or a `URL`), or a backend. */
export type ImageSource = string | URL | IoBackend;

/** Options of this entry's `openImage`. */
export interface RuntimeOpenImageOptions extends OpenImageOptions {
  /** How URLs are read (headers for credentials, `fetch`, cache and read-ahead sizes). */
  http?: HttpBackendOptions;
}

/**
 * Opens an image. A string is a file path, opened read-write unless `readOnly`; an `http(s)://`
 * string or a `URL` is read through an {@link HttpBackend} (read-only).
 * The library's default backing policy is `deny`: pass `{ backing: "same-dir" }` (or `"any"`)
 * to follow backing files.
 */
export async function openImage(source: ImageSource, options: RuntimeOpenImageOptions = {}): Promise<BlockDevice> {
  const { http, ...rest } = options;
  const openFile = httpAwareOpener(http ?? {}, nodeFileOpener);
  if (source instanceof URL || isHttpUrl(source)) {
    const io = await HttpBackend.open(source, http);
    return openImageOn(io, { openFile, ...rest }).catch(async (e: unknown) => {
      await io.close();
      throw e;
    });
  }
  const io = typeof source === "string" ? await NodeFileBackend.open(source, { readOnly: options.readOnly }) : source;
  return openImageOn(io, { openFile, ...rest });
}

/** Creates (or truncates) the file `target` as a new image and returns it open read-write. */
export async function createImage(target: string | IoBackend, options: CreateImageOptions): Promise<BlockDevice> {
  const io = typeof target === "string" ? await NodeFileBackend.open(target, { create: true }) : target;
  return createImageOn(io, { openFile: nodeFileOpener, ...options });
}
