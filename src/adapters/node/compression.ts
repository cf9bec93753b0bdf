/**
 * The compression codecs on `node:zlib` (Node, and Deno's Node compatibility layer): zlib's
 * native code on libuv's thread pool, so clusters inflate and deflate several at once and off
 * the main thread. zstd is native where the runtime has it (`zlib.zstdCompress`, Node ≥ 22.15),
 * else the JavaScript/Wasm codecs stay in use.
 * @module
 */
import * as zlib from "node:zlib";
import type { CompressionCodecs } from "../../codec/compression.js";

type Callback = (error: Error | null, result: Buffer) => void;
type ZlibCall = (data: Uint8Array, options: object, callback: Callback) => void;

/** `fn` as a promise; never rejects: failures resolve `undefined`. */
function call(fn: ZlibCall, data: Uint8Array, options: object): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    try {
      fn(data, options, (error, result) => resolve(error ? undefined : result));
    } catch {
      resolve(undefined);
    }
  });
}

/** Copies `got` into `out`; returns the byte count or -1 for a failed call. */
function landIn(got: Buffer | undefined, out: Uint8Array): number {
  if (!got) return -1;
  const n = Math.min(got.length, out.length);
  out.set(got.subarray(0, n));
  return n;
}

/** A stream whose tail is missing yields what it has (`Z_SYNC_FLUSH`), as the JS codec does. */
const LENIENT = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** The zstd functions of `node:zlib` where this runtime has them. */
interface ZstdZlib {
  zstdCompress: ZlibCall;
  zstdDecompress: ZlibCall;
  constants: { ZSTD_c_compressionLevel?: number };
}

function nativeZstd(): ZstdZlib | undefined {
  const z = zlib as unknown as Partial<ZstdZlib>;
  return typeof z.zstdCompress === "function" && typeof z.zstdDecompress === "function" ? (z as ZstdZlib) : undefined;
}

/** The codecs `node:zlib` provides (zstd only where native). */
export function nodeCompressionCodecs(): Partial<CompressionCodecs> {
  const deflateRaw = zlib.deflateRaw as unknown as ZlibCall;
  const deflate = zlib.deflate as unknown as ZlibCall;
  const inflateRaw = zlib.inflateRaw as unknown as ZlibCall;
  const codecs: { -readonly [K in keyof CompressionCodecs]?: CompressionCodecs[K] } = {
    name: "node:zlib",
    async deflateRaw(data, level) {
      const got = await call(deflateRaw, data, { level });
      if (!got) throw new Error("zlib deflate failed");
      return got;
    },
    async deflateZlib(data, level) {
      const got = await call(deflate, data, { level });
      if (!got) throw new Error("zlib deflate failed");
      return got;
    },
    // The output bound makes zlib stop (with an error) rather than grow past `out`.
    inflateRaw: async (src, out) => landIn(await call(inflateRaw, src, { ...LENIENT, maxOutputLength: Math.max(1, out.length) }), out),
  };
  const zstd = nativeZstd();
  if (zstd) {
    const levelKey = zstd.constants.ZSTD_c_compressionLevel;
    codecs.name = "node:zlib+zstd";
    codecs.zstdCompress = async (data, level) => {
      const params = levelKey === undefined ? {} : { [levelKey]: level };
      const got = await call(zstd.zstdCompress, data, { params });
      if (!got) throw new Error("zstd compression failed");
      return got;
    };
    codecs.zstdDecompress = async (src, out) =>
      landIn(await call(zstd.zstdDecompress, src, { maxOutputLength: Math.max(1, out.length) }), out);
  }
  return codecs;
}
