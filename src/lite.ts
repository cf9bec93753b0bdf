/**
 * `vdisk/lite`: the browser surface with no built-in format: a page names the drivers it needs
 * and its bundle holds only those (and no zstd encoder, as in the browser entry).
 *
 * ```ts
 * import { openImage, qcow2Driver, rawDriver } from "vdisk/lite";
 * const disk = await openImage(file, { drivers: [qcow2Driver, rawDriver] });
 * ```
 * `drivers` lists every format `openImage`/`createImage` may use (probing tries them in order;
 * put `rawDriver`, the fallback, last). Everything else matches the browser entry.
 * @module
 */
import { createBrowserImage, openBrowserSource, type BrowserImageSource, type BrowserOpenImageOptions } from "./adapters/browser/open-source.js";
import type { OpfsFileHandleLike } from "./adapters/browser/opfs-backend.js";
import type { BlockDevice } from "./core/block-device.js";
import type { IoBackend } from "./io/backend.js";
import { createImageOn, openImageOn, probeFormat, readProbeInput, type CreateImageOptions } from "./ops/open-core.js";

export * from "./api-core.js";
export { openImageOn, createImageOn, probeFormat, readProbeInput };
export type { CreateImageOptions, OpenImageOptions } from "./ops/open-core.js";
export { BlobBackend, type BlobBackendOptions } from "./adapters/browser/blob-backend.js";
export { OpfsBackend, isOpfsFileHandle, type OpfsBackendOptions, type OpfsFileHandleLike } from "./adapters/browser/opfs-backend.js";
export { blobFileOpener, type BlobFiles } from "./adapters/browser/blob-opener.js";
export type { BrowserOpenImageOptions } from "./adapters/browser/open-source.js";
// One export per driver: what a page does not import is not bundled.
export { qcow2Driver } from "./formats/qcow2/driver.js";
export { qcowDriver } from "./formats/qcow/driver.js";
export { qedDriver } from "./formats/qed/driver.js";
export { vmdkDriver } from "./formats/vmdk/driver.js";
export { vhdDriver } from "./formats/vhd/driver.js";
export { vhdxDriver } from "./formats/vhdx/driver.js";
export { vdiDriver } from "./formats/vdi/driver.js";
export { parallelsDriver } from "./formats/parallels/driver.js";
export { gow1Driver, gow2Driver } from "./formats/gow/driver.js";
export { fvdDriver } from "./formats/fvd/driver.js";
export { bochsDriver } from "./formats/bochs/driver.js";
export { cloopDriver } from "./formats/cloop/driver.js";
export { dmgDriver } from "./formats/dmg/driver.js";
export { rawDriver } from "./formats/raw/driver.js";

/** A Blob/File, a `URL` (or an `http(s)://` string), or a backend. */
export type ImageSource = BrowserImageSource;

/** Opens an image with `options.drivers` (required). Sources as in the browser entry's `openImage`. */
export function openImage(source: ImageSource, options: BrowserOpenImageOptions): Promise<BlockDevice> {
  return openBrowserSource(source, options, openImageOn);
}

/**
 * Creates an image with one of `options.drivers` and returns it open read-write; without a
 * target it lives in a new {@link MemoryBackend}.
 */
export function createImage(options: CreateImageOptions): Promise<BlockDevice>;
export function createImage(target: OpfsFileHandleLike | IoBackend, options: CreateImageOptions): Promise<BlockDevice>;
export function createImage(
  a: OpfsFileHandleLike | IoBackend | CreateImageOptions,
  b?: CreateImageOptions,
): Promise<BlockDevice> {
  return createBrowserImage(a, b, createImageOn);
}
