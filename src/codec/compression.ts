/**
 * The compression codecs every format uses (qcow2 and qcow clusters, VMDK grains), behind one
 * interface so that each runtime can supply its fastest implementation:
 * - the default, here: `fflate` (deflate) and `fzstd` (zstd decoding) in JavaScript, and the
 *   zstd encoder installed with {@link setZstdEncoder} — every full entry (Node, Deno, neutral,
 *   `vdisk.browser.js`) installs the Wasm one of `codec/zstd-encoder.ts` (loaded on first use);
 *   the browser entry does not, so that a page that only reads never bundles it (a page that
 *   writes zstd-compressed images imports `vdisk/zstd-encoder` and installs it);
 * - the Node and Deno entries install `node:zlib` (native code on libuv's thread pool, so
 *   several clusters inflate or deflate at once), with native zstd where `zlib.zstdCompress`
 *   exists (Node ≥ 22.15) — feature-detected, never required.
 * Every codec gives the same guest bytes; compressed output may differ between codecs (as it
 * does between zlib builds), and each output decodes with every codec.
 * @module
 */
import { deflateSync, inflateSync, zlibSync } from "fflate";
import { decompress as fzstdDecompress } from "fzstd";
import { UnsupportedFeatureError } from "../errors.js";

/** The operations formats need. Decoders never write past `out` and never throw. */
export interface CompressionCodecs {
  /** Raw deflate (RFC 1951, no header) of `data` at zlib `level` (0–9). */
  deflateRaw(data: Uint8Array, level: number): Promise<Uint8Array>;
  /** Deflate with the zlib header and Adler-32 trailer (RFC 1950). */
  deflateZlib(data: Uint8Array, level: number): Promise<Uint8Array>;
  /**
   * Inflates the raw deflate stream at the start of `src` (bytes after the stream are ignored)
   * into `out`. Returns the bytes produced (at most `out.length`; a stream that would produce
   * more is cut there), or -1 when the stream is invalid.
   */
  inflateRaw(src: Uint8Array, out: Uint8Array): Promise<number>;
  /** One zstd frame of `data` at `level`. */
  zstdCompress(data: Uint8Array, level: number): Promise<Uint8Array>;
  /**
   * Decodes the single zstd frame `src` (exactly one frame) into `out`; returns the bytes
   * produced or -1 when invalid or larger than `out`.
   */
  zstdDecompress(src: Uint8Array, out: Uint8Array): Promise<number>;
  /** Names the implementation, for `bench/` and bug reports (`"fflate+fzstd"`, `"node:zlib"`). */
  readonly name: string;
}

/** Copies `got` into `out` unless it already is `out`'s memory; returns the byte count. */
function landIn(got: Uint8Array, out: Uint8Array): number {
  const n = Math.min(got.length, out.length);
  if (got.buffer !== out.buffer || got.byteOffset !== out.byteOffset) out.set(got.subarray(0, n));
  return n;
}

/**
 * `out` as fzstd's output buffer. fzstd 0.1.1 compares its buffer argument with `== 1` for every
 * frame, which turns a Uint8Array into a string of all its bytes (about 30 ms per 64 KiB
 * cluster, decoding at 3–4 MB/s instead of ~100). A view whose primitive value is a number keeps
 * that comparison cheap and false, and leaves every other use of the buffer unchanged.
 */
function fzstdTarget(out: Uint8Array): Uint8Array {
  const view = out.subarray(0);
  Object.defineProperty(view, Symbol.toPrimitive, { value: () => Number.NaN });
  return view;
}

/** Loads a zstd compressor for `level` (such as `loadZstdCompressor` of `vdisk/zstd-encoder`). */
export type ZstdEncoderLoader = (level: number) => Promise<(data: Uint8Array) => Uint8Array>;

// Not imported here: a static import, even of a module that loads the encoder lazily, puts the
// encoder (≈ 250 KB minified) in every bundle that reaches this module.
let zstdEncoder: ZstdEncoderLoader | undefined;

/**
 * Installs the zstd encoder the JavaScript codecs compress with (`undefined` removes it).
 * The Node, Deno and neutral entries install the Wasm one; in a browser bundle:
 * `import { loadZstdCompressor } from "vdisk/zstd-encoder"; setZstdEncoder(loadZstdCompressor);`
 */
export function setZstdEncoder(loader: ZstdEncoderLoader | undefined): void {
  zstdEncoder = loader;
}

/** The JavaScript codecs: every runtime. */
export const JS_COMPRESSION_CODECS: CompressionCodecs = {
  name: "fflate+fzstd",
  deflateRaw: async (data, level) => deflateSync(data, { level: level as 6 }),
  deflateZlib: async (data, level) => zlibSync(data, { level: level as 6 }),
  async inflateRaw(src, out) {
    try {
      return landIn(inflateSync(src, { out }), out);
    } catch {
      return -1;
    }
  },
  async zstdCompress(data, level) {
    if (!zstdEncoder) {
      throw new UnsupportedFeatureError(
        "Cannot compress with zstd: no zstd encoder is installed (in a browser bundle, import { loadZstdCompressor } " +
          'from "vdisk/zstd-encoder" and call setZstdEncoder(loadZstdCompressor)); zlib compression needs nothing',
      );
    }
    return (await zstdEncoder(level))(data);
  },
  async zstdDecompress(src, out) {
    try {
      // Decoding into `out` bounds the output by its size, whatever the frame header claims.
      return landIn(fzstdDecompress(src, fzstdTarget(out)), out);
    } catch {
      return -1;
    }
  },
};

let active: CompressionCodecs = JS_COMPRESSION_CODECS;

/** Bytes of the zlib header (RFC 1950: deflate, no preset dictionary) `src` starts with: 2 or 0. */
export function zlibHeaderLength(src: Uint8Array): number {
  if (src.length < 2) return 0;
  const cmf = src[0];
  const flg = src[1];
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 === 0 && (flg & 0x20) === 0 ? 2 : 0;
}

/**
 * Inflates a zlib stream (or a raw deflate stream: the header is optional, as VMDK grains,
 * cloop blocks and dmg chunks are found in the wild) into `out` with the active codecs. Bytes
 * after the stream are ignored; returns the bytes produced or -1, as `inflateRaw`.
 */
export function inflateZlib(src: Uint8Array, out: Uint8Array): Promise<number> {
  return active.inflateRaw(src.subarray(zlibHeaderLength(src)), out);
}

/** The codecs in use (the runtime entry may have installed native ones). */
export function compressionCodecs(): CompressionCodecs {
  return active;
}

/**
 * Installs `codecs` for every format (members left out keep the JavaScript ones); `undefined`
 * restores the JavaScript codecs. The runtime entries call this; tests use it to compare codecs.
 */
export function setCompressionCodecs(codecs: Partial<CompressionCodecs> | undefined): void {
  active = codecs ? { ...JS_COMPRESSION_CODECS, ...codecs } : JS_COMPRESSION_CODECS;
}
