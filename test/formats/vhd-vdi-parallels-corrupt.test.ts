/**
 * Bad input for vpc, vdi and parallels: random byte mutations of the metadata and random
 * truncations of small, written images. Every failure must be an ImageError (or a RangeError
 * for a request the image makes impossible) — never another exception, a hang, or a huge
 * allocation. Each image is read, mapped, checked, written and repaired.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, isImageError, openImage, type BlockDevice } from "../../src/index.js";
import { pattern, randInt, rng } from "./image-model.js";

const MIB = 1 << 20;
const ITERATIONS = 150;

interface Case {
  format: string;
  options: string;
  size: number;
  /** Byte ranges of the file holding metadata, as [start, end) (negative = from the end). */
  metadata: Array<[number, number]>;
}

const cases: Case[] = [
  { format: "vpc", options: "force_size=on", size: 5 * MIB, metadata: [[0, 2048], [-512, 0], [2048, 2048 + 512]] },
  { format: "vpc", options: "subformat=fixed,force_size=on", size: 2 * MIB, metadata: [[-512, 0]] },
  { format: "vdi", options: "", size: 5 * MIB, metadata: [[0, 1024]] },
  { format: "vdi", options: "static=on", size: 3 * MIB, metadata: [[0, 1024]] },
  { format: "parallels", options: "cluster_size=64k", size: 2 * MIB, metadata: [[0, 256]] },
];

async function makeImage(c: Case): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  const img = await createImage(mem, { format: c.format, size: c.size, options: c.options });
  for (let i = 0; i < 6; i++) await img.write(((i * 7 + 3) * 65536 + 100) % (img.size - 5000), pattern(5000, i + 1));
  await img.close();
  return mem.bytes().slice();
}

/** Runs everything a user might do with a damaged image; returns the error, if any. */
async function exercise(bytes: Uint8Array, format: string, r: () => number): Promise<unknown> {
  let img: BlockDevice | undefined;
  try {
    img = await openImage(new MemoryBackend(bytes.slice(), { name: "fuzz" }), { format, readOnly: r() < 0.5 });
    const n = Math.min(img.size, 4 * MIB);
    if (n > 0) await img.read(0, n);
    if (img.size > n) await img.read(img.size - 4096, 4096);
    let extents = 0;
    for await (const _ of img.extents(0, Math.min(img.size, 64 * MIB))) if (++extents > 100000) break;
    await img.check();
    if (!img.readOnly) {
      if (img.size > 70000) await img.write(randInt(r, img.size - 70000), pattern(70000, 7));
      await img.check("all");
      if (img.size > 0) await img.read(0, Math.min(img.size, MIB));
    }
    await img.close();
    return undefined;
  } catch (e) {
    await img?.close().catch(() => {});
    return e;
  }
}

describe("damaged vpc, vdi and parallels images fail cleanly", () => {
  for (const c of cases) {
    it(`${c.format} (${c.options || "defaults"}): ${ITERATIONS} mutations and truncations give ImageErrors only`, async () => {
      const good = await makeImage(c);
      const r = rng(c.format.length * 1000 + c.options.length);
      const failures: string[] = [];
      let errors = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        let bytes: Uint8Array;
        if (i % 5 === 4) {
          bytes = good.slice(0, randInt(r, good.length));
        } else {
          bytes = good.slice();
          const flips = 1 + randInt(r, 4);
          for (let k = 0; k < flips; k++) {
            const [s, e] = c.metadata[randInt(r, c.metadata.length)];
            const start = s < 0 ? bytes.length + s : s;
            const end = e <= 0 && s < 0 ? bytes.length + e : e;
            const at = start + randInt(r, Math.max(1, Math.min(end, bytes.length) - start));
            bytes[at] = r() < 0.3 ? 0xff : randInt(r, 256);
          }
        }
        const err = await exercise(bytes, c.format, r);
        if (err !== undefined) {
          errors++;
          if (!isImageError(err)) failures.push(`#${i}: ${String((err as Error)?.stack ?? err)}`);
        }
        expect(process.memoryUsage().arrayBuffers).toBeLessThan(1 << 30);
      }
      expect(failures, failures.slice(0, 3).join("\n\n")).toEqual([]);
      expect(errors).toBeGreaterThan(0); // the mutations did hit something
    }, 60_000);
  }
});
