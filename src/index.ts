/**
 * vdisk for any JavaScript runtime: images on an {@link IoBackend} you supply (memory, your own
 * backend). The Node, Deno and browser entries add paths and Blobs as sources.
 * @module
 */
import type { IoBackend } from "./io/backend.js";
import { createImageOn, openImageOn, type CreateImageOptions, type OpenImageOptions } from "./ops/open.js";
import type { BlockDevice } from "./core/block-device.js";

export * from "./api.js";

/** What `openImage` accepts in a runtime without files: any {@link IoBackend}. */
export type ImageSource = IoBackend;

/** Opens an image on `source`. See {@link openImageOn}. */
export function openImage(source: ImageSource, options: OpenImageOptions = {}): Promise<BlockDevice> {
  return openImageOn(source, options);
}

/** Creates an image on `target` and returns it open read-write. See {@link createImageOn}. */
export function createImage(target: IoBackend, options: CreateImageOptions): Promise<BlockDevice> {
  return createImageOn(target, options);
}
