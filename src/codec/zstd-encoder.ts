/**
 * zstd compression through `@hpcc-js/wasm-zstd` (the reference C library compiled to Wasm,
 * embedded in its JavaScript, so it works unchanged in Node, Deno and browser bundles).
 * Loaded on first use only: most images never need it.
 * @module
 */
import { UnsupportedFeatureError } from "../errors.js";

/** Compresses `data` into one zstd frame. */
export type ZstdCompress = (data: Uint8Array) => Uint8Array;

/** The zstd level qemu-img uses for compressed qcow2 clusters (the library default). */
export const ZSTD_DEFAULT_LEVEL = 3;

/** The parts of the library's module object the copy-out fix below replaces. */
interface HeapModule {
  heapView(block: { ptr: number; size: number }): Uint8Array;
  heapToUint8Array(block: { ptr: number; size: number }): Uint8Array;
}

interface ZstdInstance {
  compress(data: Uint8Array, level?: number): Uint8Array;
  _mainModule?: HeapModule;
}

let loading: Promise<ZstdInstance> | undefined;

/**
 * The library copies each result out of Wasm memory with `new Uint8Array([...view])` (a spread
 * through a JS array: about 70 % of a zstd `convert -c` profile). One `slice()` gives the same
 * bytes. Applied only where the module has exactly the shape expected; otherwise left alone.
 */
function fixCopyOut(zstd: ZstdInstance): void {
  const m = zstd._mainModule;
  if (m && typeof m.heapView === "function" && typeof m.heapToUint8Array === "function") {
    m.heapToUint8Array = (block) => m.heapView(block).slice();
  }
}

/**
 * Returns a zstd compressor at `level`, loading the Wasm library the first time. Throws
 * `ERR_UNSUPPORTED_FEATURE` when it cannot be loaded in this runtime.
 */
export async function loadZstdCompressor(level = ZSTD_DEFAULT_LEVEL): Promise<ZstdCompress> {
  loading ??= import("@hpcc-js/wasm-zstd").then(
    async ({ Zstd }) => {
      const zstd = (await Zstd.load()) as unknown as ZstdInstance;
      fixCopyOut(zstd);
      return zstd;
    },
    (e: unknown) => {
      loading = undefined;
      throw new UnsupportedFeatureError(`Cannot compress with zstd: the zstd library did not load (${String(e)})`, {
        cause: e,
      });
    },
  );
  const zstd = await loading;
  return (data: Uint8Array) => zstd.compress(data, level);
}
