/**
 * vpc after a volatile-cache crash: the BAT entry of a new block survived but the writes that
 * extend the file (the footer move, the block's bitmap and data) were lost. The block reads as
 * unallocated, `check` reports it, and `check -r all` (which a read-write open runs) clears
 * the entry. qemu writes in the same order and refuses nothing, but has no vpc check.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";

const MIB = 1 << 20;

async function crashed(): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  const img = await createImageOn(mem, { format: "vpc", size: 8 * MIB, options: "force_size=on" });
  await img.write(0, new Uint8Array(4096).fill(3));
  await img.close();
  const before = mem.bytes().slice();
  // Allocate block 2 on a copy, then keep only its BAT entry over the old file.
  const after = new MemoryBackend(before.slice());
  const img3 = await openImageOn(after, { format: "vpc" });
  await img3.write(4 * MIB, new Uint8Array(4096).fill(9));
  await img3.close();
  const out = before.slice();
  const batOffset = 1536; // vdisk puts the BAT right after the dynamic header
  out.set(after.bytes().subarray(batOffset, batOffset + 16), batOffset);
  return out;
}

describe("vpc with a volatile write cache", () => {
  it("a BAT entry past the end of the file reads as unallocated and is repaired", async () => {
    const bytes = await crashed();
    const ro = await openImageOn(new MemoryBackend(bytes.slice(), { readOnly: true }), { format: "vpc", readOnly: true });
    expect(Array.from(await ro.read(4 * MIB, 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(await ro.read(0, 4))).toEqual([3, 3, 3, 3]);
    const c = await ro.check();
    expect(c.corruptions).toBe(1);
    expect(c.messages.join()).toMatch(/block 2 extends past the end of the file/);
    await ro.close();
    const file = new MemoryBackend(bytes.slice());
    const rw = await openImageOn(file, { format: "vpc" });
    expect((await rw.check()).corruptions).toBe(0);
    await rw.write(4 * MIB, new Uint8Array(512).fill(5));
    expect((await rw.read(4 * MIB, 1))[0]).toBe(5);
    await rw.close();
    const again = await openImageOn(new MemoryBackend(file.bytes().slice()), { format: "vpc", readOnly: true });
    expect((await again.check()).corruptions).toBe(0);
    expect((await again.read(4 * MIB, 1))[0]).toBe(5);
  });
});
