/**
 * zstd compression through `@hpcc-js/wasm-zstd` (the reference C library compiled to Wasm,
 * embedded in its JavaScript, so it works unchanged in Node, Deno and browser bundles).
 * Loaded on first use only: most images never need it.
 * @module
 */
import { UnsupportedFeatureError } from "../errors.js";

/** Compresses `data` into one zstd frame. */
export type ZstdCompress = (data: Uint8Array) => Uint8Array;

let loading: Promise<ZstdCompress> | undefined;

/** The zstd level qemu-img uses for compressed qcow2 clusters (the library default). */
const ZSTD_LEVEL = 3;

/**
 * Returns the zstd compressor, loading the Wasm library the first time. Throws
 * `ERR_UNSUPPORTED_FEATURE` when it cannot be loaded in this runtime.
 */
export function loadZstdCompressor(): Promise<ZstdCompress> {
  loading ??= import("@hpcc-js/wasm-zstd").then(
    async ({ Zstd }) => {
      const zstd = await Zstd.load();
      return (data: Uint8Array) => zstd.compress(data, ZSTD_LEVEL);
    },
    (e: unknown) => {
      loading = undefined;
      throw new UnsupportedFeatureError(`Cannot compress with zstd: the zstd library did not load (${String(e)})`, {
        cause: e,
      });
    },
  );
  return loading;
}
