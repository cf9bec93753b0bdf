/**
 * `check` stays bounded on tables whose entries all collide: each format's check keeps the
 * first problem lines, counts the rest, and builds no per-entry lists (FVD built one array
 * per shared chunk by copying it on every entry: quadratic time on a table that maps every
 * chunk to chunk 0).
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";

const MiB = 1 << 20;

describe("check bounds", () => {
  it("an FVD table mapping 131072 chunks to one physical chunk checks with capped lines and full counts", async () => {
    const mem = new MemoryBackend(new Uint8Array(0), { name: "t.fvd" });
    const img = await createImage(mem, { format: "fvd", size: 512 * MiB, options: "compact_image=on,chunk_size=4k" });
    await img.write(0, new Uint8Array(4096).fill(7));
    await img.close();
    const b = mem.bytes().slice();
    const dv = new DataView(b.buffer);
    const table = Number(dv.getBigUint64(2212, true));
    const entries = (512 * MiB) / 4096;
    for (let i = 0; i < entries; i++) dv.setUint32(table + 4 * i, 0, true);
    const dev = await openImage(new MemoryBackend(b), { format: "fvd", readOnly: true });
    const r = await dev.check();
    expect(r.corruptions).toBe(entries - 1);
    expect(r.messages.length).toBeLessThanOrEqual(100);
    expect(r.messages.join("\n")).toMatch(/physical chunk 0 is mapped by chunks 0, 1, 2, .* and 131056 more/);
    await dev.close();
  });
});
