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

/**
 * Why `x` is no {@link IoBackend}, or undefined when it is one. This entry is also what a bundler
 * that sets no runtime condition loads, while TypeScript's `bundler` resolution shows such a
 * project the browser declarations: a Blob or a path arriving here gets a sentence, not a crash.
 */
function notABackend(x: unknown, role: string): TypeError | undefined {
  if (typeof x === "object" && x !== null && typeof (x as Partial<IoBackend>).read === "function") return undefined;
  return new TypeError(
    `This is vdisk's runtime-neutral entry: the ${role} must be an IoBackend. Blobs open through the ` +
      `browser entry and paths through the Node and Deno entries: build with the "browser" (or "node") condition`,
  );
}

/** Opens an image on `source`. See {@link openImageOn}. Rejects with a TypeError for anything but an IoBackend. */
export function openImage(source: ImageSource, options: OpenImageOptions = {}): Promise<BlockDevice> {
  const wrong = notABackend(source, "source");
  return wrong ? Promise.reject(wrong) : openImageOn(source, options);
}

/** Creates an image on `target` and returns it open read-write. See {@link createImageOn}. */
export function createImage(target: IoBackend, options: CreateImageOptions): Promise<BlockDevice> {
  const wrong = notABackend(target, "target");
  return wrong ? Promise.reject(wrong) : createImageOn(target, options);
}
