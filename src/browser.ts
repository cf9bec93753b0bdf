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
import { HttpBackend, type HttpBackendOptions } from "./io/http-backend.js";
import { httpAwareOpener, isHttpUrl } from "./io/http-opener.js";

export * from "./api.js";
export { BlobBackend, type BlobBackendOptions } from "./adapters/browser/blob-backend.js";
export { blobFileOpener, type BlobFiles } from "./adapters/browser/blob-opener.js";

/** A Blob/File (opened read-only), a `URL` (or an `http(s)://` string) read with Range requests, or a backend. */
export type ImageSource = Blob | URL | string | IoBackend;

/** Options of the browser `openImage`. */
export interface BrowserOpenImageOptions extends OpenImageOptions {
  /**
   * Files the image may name (backing files): the user's dropped Files or a name → Blob record.
   * Used when `openFile` is not given; still subject to the `backing` policy.
   */
  files?: BlobFiles;
  /** How URLs are read (headers for credentials, `fetch`, cache and read-ahead sizes). */
  http?: HttpBackendOptions;
}

function isBlob(x: unknown): x is Blob {
  return typeof Blob !== "undefined" && x instanceof Blob;
}

function isBackend(x: unknown): x is IoBackend {
  return typeof x === "object" && x !== null && typeof (x as Partial<IoBackend>).read === "function" &&
    typeof (x as Partial<IoBackend>).size === "function";
}

/**
 * Opens an image. A Blob is opened read-only (so is its backing chain); a `URL` (or a string
 * holding an absolute `http(s)://` URL) read-only through an {@link HttpBackend}; an
 * {@link IoBackend} read-write unless `readOnly` or the backend cannot write. Anything else
 * (a file path, which a browser cannot open) is a `TypeError`.
 */
export async function openImage(source: ImageSource, options: BrowserOpenImageOptions = {}): Promise<BlockDevice> {
  const { files, http, ...rest } = options;
  const blobs = files ? blobFileOpener(files) : undefined;
  const openFile = rest.openFile ?? httpAwareOpener(http ?? {}, blobs);
  if ((typeof URL !== "undefined" && source instanceof URL) || isHttpUrl(source)) {
    const io = await HttpBackend.open(source, http);
    return openImageOn(io, { ...rest, openFile }).catch(async (e: unknown) => {
      await io.close();
      throw e;
    });
  }
  if (isBlob(source)) return openImageOn(new BlobBackend(source), { ...rest, openFile });
  if (isBackend(source)) return openImageOn(source, { ...rest, openFile });
  throw new TypeError(
    `openImage in a browser cannot open ${typeof source === "string" ? `the path '${source}'` : String(source)}: ` +
      "pass a Blob, File, URL or IoBackend",
  );
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
