/**
 * vdisk for Deno: `openImage`/`createImage` accept file paths and `http(s)://` URLs as well as
 * any {@link IoBackend}; backing files named by images are opened next to them (under the
 * policy). Reading needs `--allow-read`, writing `--allow-write`, URLs `--allow-net`.
 * @module
 */
import { DenoFileBackend } from "./adapters/deno/file-backend.js";
import { denoFileOpener } from "./adapters/deno/opener.js";
import { pathCreateImage, pathOpenImage, type PathRuntime } from "./ops/open-paths.js";
import { nodeCompressionCodecs } from "./adapters/node/compression.js";
import { setCompressionCodecs, setZstdEncoder } from "./codec/compression.js";
import { loadZstdCompressor } from "./codec/zstd-encoder.js";
import { denoNbdConnect, denoNbdListen } from "./adapters/deno/nbd-socket.js";
import { NbdBackend } from "./nbd/backend.js";
import { isNbdUrl } from "./nbd/socket.js";
import { startNbdServer, type NbdExportInput, type NbdServeOptions, type NbdServerHandle } from "./nbd/serve.js";

export * from "./api.js";
export { nodeCompressionCodecs } from "./adapters/node/compression.js";

// zlib's native code (on the thread pool) for every compressed cluster and grain.
setCompressionCodecs(nodeCompressionCodecs());
// The Wasm encoder where this runtime's zlib has no zstd (Node < 22.15, Deno).
setZstdEncoder(loadZstdCompressor);
export { DenoFileBackend, type DenoFileOptions } from "./adapters/deno/file-backend.js";
export { denoFileOpener } from "./adapters/deno/opener.js";
export { denoNbdConnect, denoNbdListen } from "./adapters/deno/nbd-socket.js";

export type { ImageSource, RuntimeOpenImageOptions } from "./ops/open-paths.js";

const runtime: PathRuntime = {
  // An NBD URL (`nbd://host:port/name`, `nbd+unix:///name?socket=PATH`) is the export's bytes.
  openPath: (path, options) =>
    isNbdUrl(path) && !options.create
      ? NbdBackend.open(denoNbdConnect, path, { readOnly: options.readOnly })
      : DenoFileBackend.open(path, options),
  opener: denoFileOpener,
};

/**
 * Opens an image. A string is a file path, opened read-write unless `readOnly`, or an NBD URL
 * (the export's bytes, probed like a file); an `http(s)://` string or a `URL` is read through an
 * {@link HttpBackend} (read-only).
 * The library's default backing policy is `deny`: pass `{ backing: "same-dir" }` (or `"any"`)
 * to follow backing files.
 */
export const openImage = pathOpenImage(runtime);

/** Creates (or truncates) the file `target` as a new image and returns it open read-write. */
export const createImage = pathCreateImage(runtime);

/**
 * Serves `devices` over NBD (see {@link NbdExportInput}) on `options.listen` (default
 * 127.0.0.1:10809; `{ port: 0 }` picks a free port, `{ path }` a Unix socket). Resolves once
 * listening; `close()` on the handle stops the server and flushes the devices (they stay open).
 */
export function serveNbd(devices: NbdExportInput, options: NbdServeOptions = {}): Promise<NbdServerHandle> {
  return startNbdServer(denoNbdListen, devices, options);
}

/** Connects to the NBD export `url` names, as an {@link IoBackend}. */
export function openNbd(url: string, options: { readOnly?: boolean } = {}): Promise<NbdBackend> {
  return NbdBackend.open(denoNbdConnect, url, options);
}
