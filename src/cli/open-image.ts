/**
 * Opening images for the CLI: paths, qemu-img's backing policy (`any`), backing names combined
 * with the naming image's directory the way qemu-img shows them, and each layer's file kept at
 * hand for `actual-size`.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { FileOpener, IoBackend } from "../io/backend.js";
import { NodeFileBackend, createImage, isNbdUrl, openImage, openNbd, type NodeFileOptions } from "../node.js";
import type { CreateImageOptions } from "../ops/open.js";
import { openError } from "./errors.js";
import { rejectPipeSource } from "./pipe-source.js";

/**
 * The name qemu-img shows for `name` stored in the image at `base`: absolute names as they are,
 * relative ones prefixed with the directory part of `base` (textually, no normalisation).
 */
export function combineBackingPath(base: string, name: string): string {
  if (name.startsWith("/")) return name;
  const slash = base.lastIndexOf("/");
  return slash < 0 ? name : base.slice(0, slash + 1) + name;
}

/** Files opened on behalf of one image, by the name they were opened under. */
export type OpenedFiles = Map<string, NodeFileBackend>;

/**
 * Whether the CLI reads a file with blocking I/O: files it only reads, yes — the process does
 * nothing else meanwhile, and a read of cached data then costs no round trip through libuv's
 * thread pool (see {@link NodeFileOptions.blocking}); files it writes, no — their writes stay
 * on the thread pool, where fresh pages are allocated (and written back) on several cores at
 * once. Measured on tmpfs (BENCHMARKING.md), this mix beat both all-blocking and all-pooled.
 */
const blockingFor = (readOnly: boolean | undefined): boolean => !!readOnly;

function recordingOpener(files: OpenedFiles, blocking?: boolean): FileOpener {
  return async (req) => {
    const path = combineBackingPath(req.relativeTo.name, req.name);
    const readOnly = !req.writable && !req.create;
    const f = await NodeFileBackend.open(path, { readOnly, create: req.create, blocking: blocking ?? blockingFor(readOnly) });
    files.set(path, f);
    return f;
  };
}

/** Options of {@link openCliImage}. */
export interface CliOpenOptions {
  format?: string;
  readOnly?: boolean;
  /** Open without the backing chain (`info`, unsafe operations). */
  noBacking?: boolean;
  warn?: (message: string) => void;
  /** Flush behaviour of the top image's file (`-t`); default `"writeback"`. */
  cache?: NodeFileOptions["cache"];
  /**
   * Blocking file I/O for every file of the chain; default: for files only read (see
   * `blockingFor`). A server passes false: blocking reads would stall every other client.
   */
  blocking?: boolean;
}

/** An image opened by the CLI with the files of its chain. */
export interface CliImage {
  readonly device: BlockDevice;
  /** Every file of the chain by path; the top image's file is under its own path. */
  readonly files: OpenedFiles;
}

/**
 * Opens `path` as qemu-img would; `path` may also be an NBD URL (`nbd://host:port/name`,
 * `nbd+unix:///name?socket=PATH`) — only here, for names given on the command line, never for
 * names stored in images. An image read over NBD opens no backing file. Failures become
 * "Could not open 'path': …".
 */
export async function openCliImage(path: string, options: CliOpenOptions = {}): Promise<CliImage> {
  const files: OpenedFiles = new Map();
  try {
    if (isNbdUrl(path)) {
      const io = await openNbd(path, { readOnly: options.readOnly });
      try {
        const device = await openImage(io, {
          format: options.format,
          readOnly: options.readOnly,
          noBacking: options.noBacking,
          backing: "deny",
          warn: options.warn,
        });
        return { device, files };
      } catch (e) {
        await io.close().catch(() => {});
        throw e;
      }
    }
    rejectPipeSource(path);
    const blocking = options.blocking ?? blockingFor(options.readOnly);
    const top = await NodeFileBackend.open(path, { readOnly: options.readOnly, blocking, cache: options.cache });
    files.set(path, top);
    const device = await openImage(top, {
      format: options.format,
      readOnly: options.readOnly,
      noBacking: options.noBacking,
      backing: "any",
      openFile: recordingOpener(files, options.blocking),
      warn: options.warn,
    });
    return { device, files };
  } catch (e) {
    throw openError(path, e);
  }
}

/**
 * Creates `path` (truncating it) as a new image and opens it read-write; `cache` sets the flush
 * behaviour of its file (default `"writeback"`).
 */
export async function createCliImage(
  path: string,
  options: Omit<CreateImageOptions, "openFile" | "backing">,
  cache?: NodeFileOptions["cache"],
): Promise<CliImage> {
  const files: OpenedFiles = new Map();
  const top = await NodeFileBackend.open(path, { create: true, cache });
  files.set(path, top);
  const device = await createImage(top, { ...options, backing: "any", openFile: recordingOpener(files) });
  return { device, files };
}

/** Bytes a file occupies on disk, when the backend can tell. */
export async function allocatedSizeOf(file: IoBackend | undefined): Promise<number | undefined> {
  if (file instanceof NodeFileBackend) {
    try {
      return await file.allocatedSize();
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Runs `body`, then closes the devices `devices()` lists (in order, skipping `undefined`). A
 * failure to close (a failed final flush) is reported only when `body` succeeded, so that it
 * never hides the error that stopped the command.
 */
export async function closingAfter<T>(
  devices: () => ReadonlyArray<{ close(): Promise<void> } | undefined>,
  body: () => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await body();
  } catch (e) {
    for (const d of devices()) await d?.close().catch(() => {});
    throw e;
  }
  let failure: { error: unknown } | undefined;
  for (const d of devices()) {
    try {
      await d?.close();
    } catch (e) {
      failure ??= { error: e };
    }
  }
  if (failure) throw failure.error;
  return result;
}
