/**
 * `openImage`/`createImage` for Node: paths, `http(s)://` URLs and backends, with backing files
 * opened next to the image (under the policy); and the codecs Node installs. The entry
 * (`src/node.ts`) and the CLI share this module; only they install anything.
 * @module
 */
import { pathCreateImage, pathOpenImage, type PathRuntime } from "../../ops/open-paths.js";
import { setCompressionCodecs, setZstdEncoder } from "../../codec/compression.js";
import { loadZstdCompressor } from "../../codec/zstd-encoder.js";
import { nodeCompressionCodecs } from "./compression.js";
import { NodeFileBackend } from "./file-backend.js";
import { nodeFileOpener } from "./opener.js";
import { nodeNbdConnect } from "./nbd-socket.js";
import { NbdBackend } from "../../nbd/backend.js";
import { isNbdUrl } from "../../nbd/socket.js";

/**
 * Installs zlib's native code (on the thread pool) for every compressed cluster and grain, and
 * the Wasm zstd encoder where this runtime's zlib has no zstd (Node < 22.15). Idempotent.
 */
export function installNodeCodecs(): void {
  setCompressionCodecs(nodeCompressionCodecs());
  setZstdEncoder(loadZstdCompressor);
}

export type { ImageSource, RuntimeOpenImageOptions } from "../../ops/open-paths.js";

const runtime: PathRuntime = {
  // An NBD URL (`nbd://host:port/name`, `nbd+unix:///name?socket=PATH`) is the export's bytes.
  openPath: (path, options) =>
    isNbdUrl(path) && !options.create
      ? NbdBackend.open(nodeNbdConnect, path, { readOnly: options.readOnly })
      : NodeFileBackend.open(path, options),
  opener: nodeFileOpener,
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
