/**
 * What the browser entries (`vdisk` in a browser, `vdisk/lite`) accept as an image source, turned
 * into an {@link IoBackend}: a Blob/File, a `URL` or an `http(s)://` string, or a backend.
 * @module
 */
import type { BlockDevice } from "../../core/block-device.js";
import type { FileOpener, IoBackend } from "../../io/backend.js";
import { MemoryBackend } from "../../io/memory.js";
import { HttpBackend, type HttpBackendOptions } from "../../io/http-backend.js";
import { httpAwareOpener, isHttpUrl } from "../../io/http-opener.js";
import type { CreateImageOptions, OpenImageOptions } from "../../ops/open-core.js";
import { BlobBackend } from "./blob-backend.js";
import { blobFileOpener, type BlobFiles } from "./blob-opener.js";
import { OpfsBackend, isOpfsFileHandle, type OpfsFileHandleLike } from "./opfs-backend.js";

/** A string that is an absolute `http:` or `https:` URL (a page has no file paths). */
export type HttpUrlString = `http://${string}` | `https://${string}`;

/**
 * A Blob/File (opened read-only), a `URL` (or an `http(s)://` string) read with Range requests,
 * an OPFS `FileSystemFileHandle` (read-write, persistent), or a backend.
 */
export type BrowserImageSource = Blob | URL | HttpUrlString | OpfsFileHandleLike | IoBackend;

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
 * Opens `source` with `open` (which adds the drivers): a Blob read-only (so is its backing
 * chain), a URL read-only through an {@link HttpBackend}, a backend as it is. Anything else (a
 * file path, which a page cannot open) is a `TypeError` saying what to pass instead.
 */
export async function openBrowserSource(
  source: BrowserImageSource,
  options: BrowserOpenImageOptions,
  open: (io: IoBackend, options: OpenImageOptions) => Promise<BlockDevice>,
): Promise<BlockDevice> {
  const { files, http, ...rest } = options;
  const blobs: FileOpener | undefined = files ? blobFileOpener(files) : undefined;
  const openFile = rest.openFile ?? httpAwareOpener(http ?? {}, blobs);
  if ((typeof URL !== "undefined" && source instanceof URL) || isHttpUrl(source)) {
    const io = await HttpBackend.open(source, http);
    return open(io, { ...rest, openFile }).catch(async (e: unknown) => {
      await io.close();
      throw e;
    });
  }
  if (isBlob(source)) return open(new BlobBackend(source), { ...rest, openFile });
  if (isOpfsFileHandle(source)) return open(await OpfsBackend.open(source, { readOnly: rest.readOnly }), { ...rest, openFile });
  if (isBackend(source)) return open(source, { ...rest, openFile });
  throw new TypeError(
    `openImage in a browser cannot open ${typeof source === "string" ? `the path '${source}'` : String(source as unknown)}: ` +
      "pass a Blob, File, URL or IoBackend (or an OPFS file handle)",
  );
}

/**
 * The browser `createImage(options)` / `createImage(target, options)` with `create` (which adds
 * the drivers): the target is an OPFS file handle (emptied first), a backend, or, when absent, a
 * new {@link MemoryBackend}.
 */
export async function createBrowserImage(
  a: OpfsFileHandleLike | IoBackend | CreateImageOptions,
  b: CreateImageOptions | undefined,
  create: (io: IoBackend, options: CreateImageOptions) => Promise<BlockDevice>,
): Promise<BlockDevice> {
  if (b === undefined && (isOpfsFileHandle(a) || isBackend(a))) {
    throw new TypeError("createImage(target, options) needs options with a format");
  }
  const options = b ?? (a as CreateImageOptions);
  return create(await createTarget(b === undefined ? undefined : (a as OpfsFileHandleLike | IoBackend)), options);
}

async function createTarget(target: OpfsFileHandleLike | IoBackend | undefined): Promise<IoBackend> {
  if (target === undefined) return new MemoryBackend();
  if (isOpfsFileHandle(target)) return OpfsBackend.open(target, { truncate: true });
  if (isBackend(target)) return target;
  throw new TypeError("createImage in a browser writes to an OPFS file handle or an IoBackend (or memory, given no target)");
}
