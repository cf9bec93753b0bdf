/**
 * vdisk for Node.js: `openImage`/`createImage` accept file paths as well as any
 * {@link IoBackend}; backing files named by images are opened next to them (under the policy).
 * @module
 */
import { NodeFileBackend } from "./adapters/node/file-backend.js";
import { nodeFileOpener } from "./adapters/node/opener.js";
import { createImageOn, openImageOn, type CreateImageOptions, type OpenImageOptions } from "./ops/open.js";
import type { BlockDevice } from "./core/block-device.js";
import type { IoBackend } from "./io/backend.js";
import { nodeNbdConnect, nodeNbdListen } from "./adapters/node/nbd-socket.js";
import { NbdBackend } from "./nbd/backend.js";
import { isNbdUrl } from "./nbd/socket.js";
import { startNbdServer, type NbdExportInput, type NbdServeOptions, type NbdServerHandle } from "./nbd/serve.js";
import { nodeCompressionCodecs } from "./adapters/node/compression.js";
import { setCompressionCodecs } from "./codec/compression.js";

export * from "./api.js";
export { nodeCompressionCodecs } from "./adapters/node/compression.js";

// zlib's native code (on the thread pool) for every compressed cluster and grain.
setCompressionCodecs(nodeCompressionCodecs());
export { NodeFileBackend, type NodeFileOptions } from "./adapters/node/file-backend.js";
export { nodeFileOpener } from "./adapters/node/opener.js";
export { nodeNbdConnect, nodeNbdListen } from "./adapters/node/nbd-socket.js";

/** A path, an NBD URL (`nbd://host:port/name`, `nbd+unix:///name?socket=PATH`) or a backend. */
export type ImageSource = string | IoBackend;

/**
 * Opens an image. A string is a file path, opened read-write unless `readOnly`, or an NBD URL
 * (the export's bytes, probed like a file).
 * The library's default backing policy is `deny`: pass `{ backing: "same-dir" }` (or `"any"`)
 * to follow backing files.
 */
export async function openImage(source: ImageSource, options: OpenImageOptions = {}): Promise<BlockDevice> {
  const io = typeof source === "string"
    ? isNbdUrl(source)
      ? await NbdBackend.open(nodeNbdConnect, source, { readOnly: options.readOnly })
      : await NodeFileBackend.open(source, { readOnly: options.readOnly })
    : source;
  return openImageOn(io, { openFile: nodeFileOpener, ...options });
}

/** Creates (or truncates) the file `target` as a new image and returns it open read-write. */
export async function createImage(target: ImageSource, options: CreateImageOptions): Promise<BlockDevice> {
  const io = typeof target === "string" ? await NodeFileBackend.open(target, { create: true }) : target;
  return createImageOn(io, { openFile: nodeFileOpener, ...options });
}

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
