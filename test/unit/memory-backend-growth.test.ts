/**
 * A write far past the end of an in-memory file (a corrupt table entry pointing at 2^45, which
 * the fuzz run found through qcow2's in-place writes) is an ImageError, not V8's RangeError
 * "Invalid typed array length"; `maxSize` bounds the growth.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, isImageError } from "../../src/index.js";

describe("MemoryBackend growth", () => {
  it("a write far past the end fails with ERR_IMAGE_FULL", async () => {
    const m = new MemoryBackend(new Uint8Array(4096));
    const e = await m.write(2 ** 45, new Uint8Array(512)).catch((x: unknown) => x);
    expect(isImageError(e), String(e)).toBe(true);
    expect((e as { code: string }).code).toBe("ERR_IMAGE_FULL");
    expect((await m.size())).toBe(4096);
  });

  it("maxSize bounds the growth, and writes below it still work", async () => {
    const m = new MemoryBackend(new Uint8Array(0), { maxSize: 1 << 20 });
    await m.write((1 << 20) - 512, new Uint8Array(512).fill(9));
    expect(await m.size()).toBe(1 << 20);
    await expect(m.write(1 << 20, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_IMAGE_FULL" });
    await expect(m.truncate(2 << 20)).rejects.toMatchObject({ code: "ERR_IMAGE_FULL" });
  });
});
