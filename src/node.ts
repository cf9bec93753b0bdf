/**
 * vdisk for Node.js: `openImage`/`createImage` accept file paths, `http(s)://` URLs and NBD URLs
 * as well as any {@link IoBackend}; backing files named by images are opened next to them (under
 * the policy). Importing it installs `node:zlib` as the compression codecs (a side effect, listed
 * in package.json's `sideEffects`).
 * @module
 */
import { installNodeCodecs } from "./adapters/node/open-image.js";
import { nodeNbdConnect, nodeNbdListen } from "./adapters/node/nbd-socket.js";
import { NbdBackend } from "./nbd/backend.js";
import { startNbdServer, type NbdExportInput, type NbdServeOptions, type NbdServerHandle } from "./nbd/serve.js";

export * from "./api.js";
export { nodeCompressionCodecs } from "./adapters/node/compression.js";
export { NodeFileBackend, type NodeFileOptions } from "./adapters/node/file-backend.js";
export { nodeFileOpener } from "./adapters/node/opener.js";
export { nodeNbdConnect, nodeNbdListen } from "./adapters/node/nbd-socket.js";
export { createImage, openImage, installNodeCodecs, type ImageSource, type RuntimeOpenImageOptions } from "./adapters/node/open-image.js";

installNodeCodecs();

/**
 * Serves `devices` over NBD (see {@link NbdExportInput}) on `options.listen` (default
 * 127.0.0.1:10809; `{ port: 0 }` picks a free port, `{ path }` a Unix socket). Resolves once
 * listening; `close()` on the handle stops the server and flushes the devices (they stay open).
 */
export function serveNbd(devices: NbdExportInput, options: NbdServeOptions = {}): Promise<NbdServerHandle> {
  return startNbdServer(nodeNbdListen, devices, options);
}

/** Connects to the NBD export `url` names, as an {@link IoBackend}. */
export function openNbd(url: string, options: { readOnly?: boolean } = {}): Promise<NbdBackend> {
  return NbdBackend.open(nodeNbdConnect, url, options);
}
