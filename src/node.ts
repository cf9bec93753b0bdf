/**
 * vdisk for Node.js: `openImage`/`createImage` accept file paths and `http(s)://` URLs as well as
 * any {@link IoBackend}; backing files named by images are opened next to them (under the policy).
 * Importing it installs `node:zlib` as the compression codecs (a side effect, listed in
 * package.json's `sideEffects`).
 * @module
 */
import { installNodeCodecs } from "./adapters/node/open-image.js";

export * from "./api.js";
export { nodeCompressionCodecs } from "./adapters/node/compression.js";
export { NodeFileBackend, type NodeFileOptions } from "./adapters/node/file-backend.js";
export { nodeFileOpener } from "./adapters/node/opener.js";
export { createImage, openImage, installNodeCodecs, type ImageSource, type RuntimeOpenImageOptions } from "./adapters/node/open-image.js";

installNodeCodecs();
