/**
 * Test helpers for format life-cycle tests: a seeded RNG, random guest operations applied to an
 * image and to an in-memory model at once, and checks that the image matches the model.
 */
import { expect } from "vitest";
import type { BlockDevice } from "../../src/index.js";
import { MemoryBackend } from "../../src/index.js";
import type { FileOpener } from "../../src/io/backend.js";

export { rng } from "../helpers/random.js";

/** An integer in `[0, n)`. */
export function randInt(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

/** Bytes that are not all one value (so misplaced data shows). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((i * 131 + seed * 17) ^ (i >> 7)) & 0xff || 1;
  return out;
}

/** Options of {@link randomOps}. */
export interface RandomOpsOptions {
  ops: number;
  /** Largest write in bytes. */
  maxLength: number;
  /** Share of zero writes (0..1). */
  zeroShare?: number;
  /** Call `flush` now and then. */
  flushes?: boolean;
}

/**
 * Applies random unaligned writes and zero writes to `img` and to `model` (its expected
 * contents), returning the model.
 */
export async function randomOps(img: BlockDevice, model: Uint8Array, r: () => number, o: RandomOpsOptions): Promise<void> {
  for (let i = 0; i < o.ops; i++) {
    const len = 1 + randInt(r, o.maxLength);
    const off = randInt(r, Math.max(1, img.size - len));
    const n = Math.min(len, img.size - off);
    const roll = r();
    if (roll < (o.zeroShare ?? 0.15)) {
      await img.writeZeroes(off, n, { unmap: r() < 0.5 });
      model.fill(0, off, off + n);
    } else {
      const data = pattern(n, i + 1);
      await img.write(off, data);
      model.set(data, off);
    }
    if (o.flushes && r() < 0.1) await img.flush();
  }
}

/** Index of the first byte where `a` and `b` differ, or -1 (fast: `toEqual` is slow on big arrays). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Asserts that `img` reads exactly `model`, whole and in odd-sized chunks. */
export async function expectContents(img: BlockDevice, model: Uint8Array): Promise<void> {
  const all = await img.read(0, img.size);
  const bad = firstDifference(all, model);
  expect(bad, `first differing byte at ${bad}`).toBe(-1);
  // Odd-sized reads cross clusters differently.
  for (let off = 0; off < img.size; off += 77777) {
    const n = Math.min(9999, img.size - off);
    const at = firstDifference(await img.read(off, n), model.subarray(off, off + n));
    expect(at, `chunk at ${off}: first differing byte at ${at}`).toBe(-1);
  }
}

/** Asserts that the extents tile the disk and that ranges reported as zero read as zeros. */
export async function expectExtentsAgree(img: BlockDevice, model: Uint8Array): Promise<void> {
  let pos = 0;
  for await (const e of img.extents()) {
    expect(e.offset).toBe(pos);
    expect(e.length).toBeGreaterThan(0);
    if (e.zero) {
      const bad = model.subarray(e.offset, e.offset + e.length).findIndex((b) => b !== 0);
      expect(bad, `extent at ${e.offset} reported zero but holds data`).toBe(-1);
    }
    pos += e.length;
  }
  expect(pos).toBe(img.size);
}

/** A file opener that serves named in-memory files (read-only copies). */
export function memoryOpener(files: Record<string, Uint8Array>): FileOpener {
  return async (req) => {
    const f = files[req.name];
    if (!f) throw new Error(`no such test file ${req.name}`);
    return new MemoryBackend(f.slice(), { name: req.name, readOnly: !req.writable });
  };
}
