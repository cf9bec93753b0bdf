/**
 * vdisk for browsers: open a `Blob`/`File` (read-only), a `URL` (HTTP Range requests), an OPFS
 * file handle (read-write, persistent) or any {@link IoBackend}; create images in OPFS or in
 * memory. Backing files are looked up among the Blobs passed as `files`.
 * @module
 */
import { createBrowserImage, openBrowserSource, type BrowserImageSource, type BrowserOpenImageOptions } from "./adapters/browser/open-source.js";
import type { OpfsFileHandleLike } from "./adapters/browser/opfs-backend.js";
import { createImageOn, openImageOn, type CreateImageOptions } from "./ops/open.js";
import type { BlockDevice } from "./core/block-device.js";
import type { IoBackend } from "./io/backend.js";

export * from "./api.js";
export { BlobBackend, type BlobBackendOptions } from "./adapters/browser/blob-backend.js";
export { OpfsBackend, isOpfsFileHandle, type OpfsBackendOptions, type OpfsFileHandleLike } from "./adapters/browser/opfs-backend.js";
export { blobFileOpener, type BlobFiles } from "./adapters/browser/blob-opener.js";
export type { BrowserOpenImageOptions } from "./adapters/browser/open-source.js";

/** A Blob/File (opened read-only), a `URL` (or an `http(s)://` string) read with Range requests, or a backend. */
export type ImageSource = BrowserImageSource;

/**
 * Opens an image. A Blob is opened read-only (so is its backing chain); a `URL` (or a string
 * holding an absolute `http(s)://` URL) read-only through an {@link HttpBackend}; an
 * {@link IoBackend} read-write unless `readOnly` or the backend cannot write. Anything else
 * (a file path, which a browser cannot open) is a `TypeError`.
 */
export function openImage(source: ImageSource, options: BrowserOpenImageOptions = {}): Promise<BlockDevice> {
  return openBrowserSource(source, options, openImageOn);
}

/**
 * Creates an image and returns it open read-write: in an OPFS file handle (emptied first;
 * persistent), in a backend of yours, or, without a target, in a new {@link MemoryBackend}
 * (pass your own to read the file's bytes afterwards: `backend.bytes()`).
 */
export function createImage(options: CreateImageOptions): Promise<BlockDevice>;
export function createImage(target: OpfsFileHandleLike | IoBackend, options: CreateImageOptions): Promise<BlockDevice>;
export function createImage(
  a: OpfsFileHandleLike | IoBackend | CreateImageOptions,
  b?: CreateImageOptions,
): Promise<BlockDevice> {
  return createBrowserImage(a, b, createImageOn);
}
