/**
 * The compression codecs: the JavaScript ones (every runtime) and node:zlib's (Node, Deno) give
 * streams each other decodes to the same bytes, and their decoders share one contract — stop at
 * the end of the stream, never write past `out`, -1 for garbage — whatever the input.
 */
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { nodeCompressionCodecs } from "../../src/adapters/node/compression.js";
import { JS_COMPRESSION_CODECS, type CompressionCodecs } from "../../src/codec/compression.js";
import { rng } from "../helpers/random.js";

const native = { ...JS_COMPRESSION_CODECS, ...nodeCompressionCodecs() } as CompressionCodecs;
const codecs: Array<[string, CompressionCodecs]> = [["js", JS_COMPRESSION_CODECS], ["node", native]];

/** 64 KiB that deflate to about half: random bytes in runs of repeated ones. */
function cluster(seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(65536);
  for (let i = 0; i < out.length; ) {
    const v = Math.floor(r() * 256);
    const n = r() < 0.5 ? 1 : Math.floor(r() * 16);
    out.fill(v, i, Math.min(out.length, i + n));
    i += Math.max(1, n);
  }
  return out;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe("compression codecs", () => {
  it("the node codecs are native zlib", () => {
    expect(native.name.startsWith("node:zlib")).toBe(true);
  });

  for (const [encName, enc] of codecs) {
    for (const [decName, dec] of codecs) {
      it(`raw deflate by ${encName} inflates with ${decName}, trailing bytes ignored`, async () => {
        const data = cluster(encName.length * 7 + decName.length);
        const z = await enc.deflateRaw(data, 6);
        expect(z.length).toBeLessThan(data.length);
        // As in a qcow2 file: the next sectors' bytes follow the stream.
        const withTail = new Uint8Array(z.length + 700);
        withTail.set(z);
        withTail.fill(0xab, z.length);
        const out = new Uint8Array(65536);
        expect(await dec.inflateRaw(withTail, out)).toBe(65536);
        expect(same(out, data)).toBe(true);
      });

      it(`zstd by ${encName} decodes with ${decName}`, async () => {
        const data = cluster(99);
        const z = await enc.zstdCompress(data, 3);
        const out = new Uint8Array(65536);
        expect(await dec.zstdDecompress(z, out)).toBe(65536);
        expect(same(out, data)).toBe(true);
      });
    }
  }

  for (const [name, c] of codecs) {
    it(`${name}: zlib-wrapped deflate is a zlib stream (header and Adler-32)`, async () => {
      const data = cluster(5);
      const z = await c.deflateZlib(data, 6);
      expect(same(zlib.inflateSync(z), data)).toBe(true);
    });

    it(`${name}: decoders never write past out and report garbage as -1`, async () => {
      const data = new Uint8Array(200_000).fill(7);
      const z = await c.deflateRaw(data, 6);
      const out = new Uint8Array(65536 + 16);
      const guard = out.subarray(65536);
      guard.fill(0x5a);
      const n = await c.inflateRaw(z, out.subarray(0, 65536));
      // A stream longer than `out` is cut there (JS) or refused (native); never overflows.
      expect(n === 65536 || n === -1).toBe(true);
      expect(guard.every((b) => b === 0x5a)).toBe(true);
      expect(await c.inflateRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]), new Uint8Array(512))).toBe(-1);
      expect(await c.zstdDecompress(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff]), new Uint8Array(512))).toBe(-1);
      // A zstd frame that decodes to more than `out` holds is refused or cut, never overflows.
      const big = await c.zstdCompress(new Uint8Array(100_000).fill(3), 3);
      const small = new Uint8Array(4096 + 16);
      small.fill(0x5a, 4096);
      const m = await c.zstdDecompress(big, small.subarray(0, 4096));
      expect(m === 4096 || m === -1).toBe(true);
      expect(small.subarray(4096).every((b) => b === 0x5a)).toBe(true);
    });

    it(`${name}: a truncated deflate stream gives what it has (short count), not a throw`, async () => {
      const data = cluster(11);
      const z = await c.deflateRaw(data, 6);
      const out = new Uint8Array(65536);
      const n = await c.inflateRaw(z.subarray(0, z.length >> 1), out);
      expect(n).toBeLessThan(65536);
    });
  }
});
