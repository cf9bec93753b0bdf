import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";

describe("ImageDevice over raw", () => {
  it("write() then read() returns the bytes at unaligned offsets", async () => {
    const img = await createImage(new MemoryBackend(), { format: "raw", size: 1 << 20 });
    const data = new Uint8Array(3000).map((_, i) => (i * 7 + 1) & 0xff);
    await img.write(1234, data);
    expect(await img.read(1234, 3000)).toEqual(data);
    expect((await img.read(0, 1234)).every((b) => b === 0)).toBe(true);
    await img.close();
  });

  it("read() past the end throws RangeError", async () => {
    const img = await createImage(new MemoryBackend(), { format: "raw", size: 4096 });
    await expect(img.read(4000, 200)).rejects.toBeInstanceOf(RangeError);
  });

  it("a probed raw image refuses a first-sector write that looks like qcow2 only when qcow2 is known", async () => {
    const mem = new MemoryBackend(new Uint8Array(65536));
    const warnings: string[] = [];
    const img = await openImage(mem, { warn: (m) => warnings.push(m) });
    expect(img.format).toBe("raw");
    expect(warnings.join(" ")).toMatch(/probing guessed raw/);
    await img.write(0, new Uint8Array([1, 2, 3]));
    expect(Array.from(await img.read(0, 3))).toEqual([1, 2, 3]);
  });
});
