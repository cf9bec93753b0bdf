/**
 * GOW under bad input: truncated and mutated headers and maps give ImageErrors (never a hang,
 * a crash or a huge allocation).
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, isImageError, openImage } from "../../src/index.js";
import { seeded } from "./gow-fvd-helpers.js";

const BLOCK = 65536;

async function sample(): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  const img = await createImage(mem, { format: "gow1", size: 8 * BLOCK });
  for (const b of [3, 0, 6]) await img.write(b * BLOCK + 7, new Uint8Array(600).fill(b + 1));
  await img.close();
  return mem.bytes().slice();
}

/** Opens and exercises `bytes`; returns "ok" or the ImageError code. Anything else fails the test. */
async function tryAll(bytes: Uint8Array, format?: string): Promise<string> {
  try {
    const img = await openImage(new MemoryBackend(bytes), { format, readOnly: true });
    await img.read(0, Math.min(img.size, 1 << 20));
    for await (const e of img.extents(0, Math.min(img.size, 1 << 20))) void e;
    await img.check();
    await img.info();
    await img.close();
    return "ok";
  } catch (e) {
    if (!isImageError(e)) throw e;
    return e.code;
  }
}

describe("gow bad input", () => {
  it("truncated files give ImageErrors", { timeout: 20000 }, async () => {
    const f = await sample();
    for (const len of [0, 3, 11, 12, 13, 100, 4096, 4_194_315]) {
      const code = await tryAll(f.slice(0, len), "gow1");
      expect(code, `length ${len}`).toMatch(/^ERR_/);
    }
  });

  it("a map entry past allocated is refused read-write and reported by check", async () => {
    const f = await sample();
    new DataView(f.buffer).setUint32(12 + 4 * 5, 9, true); // block 5 -> slot 9, allocated 3
    await expect(openImage(new MemoryBackend(f.slice()), { format: "gow1" })).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    const img = await openImage(new MemoryBackend(f.slice()), { format: "gow1", readOnly: true });
    await expect(img.read(5 * BLOCK, 10)).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE", message: /slot 9/ });
    expect((await img.read(3 * BLOCK + 7, 1))[0]).toBe(4);
    const c = await img.check();
    expect(c.corruptions).toBe(1);
  });

  it("a slot used twice is refused read-write and reported by check", async () => {
    const f = await sample();
    new DataView(f.buffer).setUint32(12 + 4 * 1, 0, true); // block 1 shares slot 0 with block 3
    await expect(openImage(new MemoryBackend(f.slice()), { format: "gow1" })).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    const img = await openImage(new MemoryBackend(f.slice()), { format: "gow1", readOnly: true });
    const c = await img.check();
    expect(c.corruptions).toBe(1);
    expect(c.messages.join()).toMatch(/slot 0 is used twice/);
  });

  it("header fields out of range give a clean error", async () => {
    for (const [at, value] of [[4, 0], [4, (1 << 20) + 1], [8, (1 << 20) + 1]] as const) {
      const f = await sample();
      new DataView(f.buffer).setUint32(at, value, true);
      expect(await tryAll(f, "gow1"), `field at ${at} = ${value}`).toBe("ERR_CORRUPT_IMAGE");
    }
  });

  it("random mutations of header and map never escape as non-ImageErrors", { timeout: 30000 }, async () => {
    const f = await sample();
    const r = seeded(42);
    for (let i = 0; i < 80; i++) {
      const m = f.slice();
      const flips = 1 + Math.floor(r() * 4);
      for (let k = 0; k < flips; k++) {
        const at = r() < 0.3 ? Math.floor(r() * 12) : 12 + Math.floor(r() * 64);
        m[at] = Math.floor(r() * 256);
      }
      await tryAll(m, r() < 0.5 ? "gow1" : undefined);
    }
  });
});
