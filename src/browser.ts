/**
 * vdisk for browsers: open a `Blob`/`File` (read-only) or any {@link IoBackend}; create images
 * in memory. Backing files are looked up among the Blobs passed as `files`.
 * @module
 */
import { BlobBackend } from "./adapters/browser/blob-backend.js";
import { blobFileOpener, type BlobFiles } from "./adapters/browser/blob-opener.js";
import { createImageOn, openImageOn, type CreateImageOptions, type OpenImageOptions } from "./ops/open.js";
import type { BlockDevice } from "./core/block-device.js";
import type { IoBackend } from "./io/backend.js";
import { MemoryBackend } from "./io/memory.js";

export * from "./api.js";
export { BlobBackend, type BlobBackendOptions } from "./adapters/browser/blob-backend.js";
export { blobFileOpener, type BlobFiles } from "./adapters/browser/blob-opener.js";

/** A Blob/File (opened read-only) or a backend. */
export type ImageSource = Blob | IoBackend;

/** Options of the browser `openImage`. */
export interface BrowserOpenImageOptions extends OpenImageOptions {
  /**
   * Files the image may name (backing files): the user's dropped Files or a name → Blob record.
   * Used when `openFile` is not given; still subject to the `backing` policy.
   */
  files?: BlobFiles;
}

function isBlob(x: unknown): x is Blob {
  return typeof Blob !== "undefined" && x instanceof Blob;
}

/**
 * Opens an image. A Blob is opened read-only (so is its backing chain); an {@link IoBackend}
 * read-write unless `readOnly` or the backend cannot write.
 */
export function openImage(source: ImageSource, options: BrowserOpenImageOptions = {}): Promise<BlockDevice> {
  const { files, ...rest } = options;
  const io = isBlob(source) ? new BlobBackend(source) : source;
  const openFile = rest.openFile ?? (files ? blobFileOpener(files) : undefined);
  return openImageOn(io, { ...rest, openFile });
}

/**
 * Creates an image and returns it open read-write. Without a target it lives in a new
 * {@link MemoryBackend}; pass your own to read the file's bytes afterwards (`backend.bytes()`).
 */
export function createImage(options: CreateImageOptions): Promise<BlockDevice>;
export function createImage(target: IoBackend, options: CreateImageOptions): Promise<BlockDevice>;
export function createImage(a: IoBackend | CreateImageOptions, b?: CreateImageOptions): Promise<BlockDevice> {
  if (b !== undefined) return createImageOn(a as IoBackend, b);
  if (typeof (a as Partial<IoBackend>).read === "function") {
    return Promise.reject(new TypeError("createImage(target, options) needs options with a format"));
  }
  return createImageOn(new MemoryBackend(), a as CreateImageOptions);
}
