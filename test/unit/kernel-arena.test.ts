// allocBuffer/freeBuffer of the Wasm kernel: views of Wasm memory that never detach, never
// overlap, are reused after free, and degrade to plain buffers when the arena is full.
import { beforeEach, describe, expect, it } from "vitest";
import { instantiateWasmKernel, tsKernel, type WasmKernel } from "../../src/kernel/index.js";

let k: WasmKernel;

beforeEach(async () => {
  k = await instantiateWasmKernel(); // a fresh instance (and arena) per test
});

describe("Wasm kernel arena", () => {
  it("allocBuffer() returns 4 KiB-aligned views of Wasm memory of the requested size", () => {
    expect(k.arenaBytes).toBeGreaterThanOrEqual(60 * 2 ** 20);
    for (const size of [1, 511, 4096, 4097, 65536, 3 * 2 ** 20 + 7]) {
      const b = k.allocBuffer(size);
      expect(b.length).toBe(size);
      expect(k.ownsBuffer(b)).toBe(true);
      expect(b.byteOffset % 4096).toBe(0);
    }
    expect(k.arenaBytesInUse()).toBe(4096 * (1 + 1 + 1 + 2 + 16 + 769));
  });

  it("live buffers never overlap and keep their contents across other allocations", () => {
    const live: { buf: Uint8Array; tag: number }[] = [];
    let tag = 0;
    for (let round = 0; round < 400; round++) {
      if (live.length > 0 && round % 3 === 2) {
        const [gone] = live.splice((round * 7) % live.length, 1);
        k.freeBuffer(gone.buf);
      } else {
        const buf = k.allocBuffer(1 + ((round * 7919) % 300_000));
        tag = (tag % 250) + 1;
        buf.fill(tag);
        live.push({ buf, tag });
      }
      for (const { buf, tag: t } of live) {
        expect(buf.byteLength).toBeGreaterThan(0); // not detached
        expect(buf[0]).toBe(t);
        expect(buf[buf.length - 1]).toBe(t);
      }
    }
    for (const { buf, tag: t } of live) expect(k.findNonZero(buf, 0, buf.length) === 0 && buf.every((x) => x === t)).toBe(true);
    for (const { buf } of live) k.freeBuffer(buf);
    expect(k.arenaBytesInUse()).toBe(0);
  });

  it("freed granules are reused: freeing everything lets the whole arena be allocated again", () => {
    const a = k.allocBuffer(10 * 4096);
    const b = k.allocBuffer(4096);
    k.freeBuffer(a);
    const c = k.allocBuffer(4096); // first fit: lands where `a` was
    expect(c.byteOffset).toBe(a.byteOffset);
    k.freeBuffer(b);
    k.freeBuffer(c);
    const all = k.allocBuffer(k.arenaBytes);
    expect(k.ownsBuffer(all)).toBe(true);
    k.freeBuffer(all);
  });

  it("an exhausted arena yields plain zeroed buffers, which the kernel still scans", () => {
    const all = k.allocBuffer(k.arenaBytes);
    const extra = k.allocBuffer(1000);
    expect(k.ownsBuffer(extra)).toBe(false);
    expect(extra.every((x) => x === 0)).toBe(true);
    extra[999] = 5;
    expect(k.findNonZero(extra, 0, 1000)).toBe(999);
    k.freeBuffer(extra); // a no-op for plain buffers
    const tooBig = k.allocBuffer(k.arenaBytes + 1);
    expect(k.ownsBuffer(tooBig)).toBe(false);
    k.freeBuffer(all);
    expect(k.ownsBuffer(k.allocBuffer(1000))).toBe(true);
  });

  it("freeBuffer() rejects double frees and views that do not start an allocation", () => {
    const a = k.allocBuffer(8192);
    expect(() => k.freeBuffer(a.subarray(1))).toThrow(RangeError);
    expect(() => k.freeBuffer(a.subarray(4096))).toThrow(RangeError);
    k.freeBuffer(a);
    expect(() => k.freeBuffer(a)).toThrow(RangeError);
    expect(k.arenaBytesInUse()).toBe(0);
  });

  it("allocBuffer(0) gives an empty buffer; negative or fractional sizes are RangeErrors", () => {
    expect(k.allocBuffer(0).length).toBe(0);
    expect(() => k.allocBuffer(-1)).toThrow(RangeError);
    expect(() => k.allocBuffer(1.5)).toThrow(RangeError);
    expect(() => tsKernel.allocBuffer(1.5)).toThrow(RangeError);
    expect(k.arenaBytesInUse()).toBe(0);
  });
});
