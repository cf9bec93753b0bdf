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

  it("a map entry past allocated refuses writes, is reported by check and freed by check -r all", async () => {
    const f = await sample();
    new DataView(f.buffer).setUint32(12 + 4 * 5, 9, true); // block 5 -> slot 9, allocated 3
    const ro = await openImage(new MemoryBackend(f.slice()), { format: "gow1", readOnly: true });
    await expect(ro.read(5 * BLOCK, 10)).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE", message: /slot 9/ });
    expect((await ro.read(3 * BLOCK + 7, 1))[0]).toBe(4);
    expect((await ro.check()).corruptions).toBe(1);
    // Read-write opens (so that the repair can run) but refuses writes until repaired.
    const img = await openImage(new MemoryBackend(f.slice()), { format: "gow1" });
    await expect(img.write(7 * BLOCK, new Uint8Array(512).fill(1))).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    const fixed = await img.check("all");
    expect(fixed.corruptions).toBe(0);
    expect(fixed.corruptionsFixed).toBe(1);
    expect(Array.from(await img.read(5 * BLOCK, 4))).toEqual([0, 0, 0, 0]);
    await img.write(7 * BLOCK, new Uint8Array(512).fill(1));
    expect((await img.check()).corruptions).toBe(0);
    await img.close();
  });

  it("an image that lost only its allocated counter is repaired by raising the counter", async () => {
    const f = await sample(); // blocks 3, 0, 6 in slots 0, 1, 2
    new DataView(f.buffer).setUint32(8, 2, true); // the counter write (3) was lost
    const img = await openImage(new MemoryBackend(f.slice()), { format: "gow1" });
    const c = await img.check();
    expect(c.corruptions).toBe(1);
    expect(c.messages.join()).toMatch(/block 6 holds slot 2, but only 2 slots are allocated/);
    const fixed = await img.check("all");
    expect(fixed.corruptions).toBe(0);
    expect(fixed.corruptionsFixed).toBe(1);
    expect((await img.read(6 * BLOCK + 7, 1))[0]).toBe(7);
    await img.close();
  });

  it("a slot used twice refuses writes and is reported by check", async () => {
    const f = await sample();
    new DataView(f.buffer).setUint32(12 + 4 * 1, 0, true); // block 1 shares slot 0 with block 3
    const rw = await openImage(new MemoryBackend(f.slice()), { format: "gow1" });
    await expect(rw.write(7 * BLOCK, new Uint8Array(512).fill(1))).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    await rw.close();
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
