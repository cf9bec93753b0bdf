/**
 * vdisk for Deno: `openImage`/`createImage` accept file paths as well as any {@link IoBackend};
 * backing files named by images are opened next to them (under the policy). Reading needs
 * `--allow-read`, writing `--allow-write`; nothing uses the network.
 * @module
 */
import { DenoFileBackend } from "./adapters/deno/file-backend.js";
import { denoFileOpener } from "./adapters/deno/opener.js";
import { createImageOn, openImageOn, type CreateImageOptions, type OpenImageOptions } from "./ops/open.js";
import type { BlockDevice } from "./core/block-device.js";
import type { IoBackend } from "./io/backend.js";
import { nodeCompressionCodecs } from "./adapters/node/compression.js";
import { setCompressionCodecs } from "./codec/compression.js";

export * from "./api.js";
export { nodeCompressionCodecs } from "./adapters/node/compression.js";

// zlib's native code (on the thread pool) for every compressed cluster and grain.
setCompressionCodecs(nodeCompressionCodecs());
export { DenoFileBackend, type DenoFileOptions } from "./adapters/deno/file-backend.js";
export { denoFileOpener } from "./adapters/deno/opener.js";

/** A path or a backend. */
export type ImageSource = string | IoBackend;

/**
 * Opens an image. A string is a file path, opened read-write unless `readOnly`.
 * The library's default backing policy is `deny`: pass `{ backing: "same-dir" }` (or `"any"`)
 * to follow backing files.
 */
export async function openImage(source: ImageSource, options: OpenImageOptions = {}): Promise<BlockDevice> {
  const io = typeof source === "string" ? await DenoFileBackend.open(source, { readOnly: options.readOnly }) : source;
  return openImageOn(io, { openFile: denoFileOpener, ...options });
}

/** Creates (or truncates) the file `target` as a new image and returns it open read-write. */
export async function createImage(target: ImageSource, options: CreateImageOptions): Promise<BlockDevice> {
  const io = typeof target === "string" ? await DenoFileBackend.open(target, { create: true }) : target;
  return createImageOn(io, { openFile: denoFileOpener, ...options });
}
