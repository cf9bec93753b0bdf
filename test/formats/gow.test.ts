/**
 * GOW v1/v2: the worked example of spec §6 byte for byte (the only cross-check: no other tool
 * reads GOW), create limits, the zero-block rule, first-write slot order, image full, resize,
 * check and the orphan tail, probing and foreign magics, round trips against a model.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, isImageError, openImage } from "../../src/index.js";
import { diffAt, fillPattern, seeded } from "./gow-fvd-helpers.js";

const MiB = 1 << 20;
const BLOCK = 65536;
const V1_HEADER = 4_194_316;
const V2_BASE = 16_777_728;

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at, true);
}

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, "expected an error").toBeDefined();
  expect(isImageError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  if (message) expect((e as Error).message).toMatch(message);
}

describe("gow1 worked example (spec §6)", () => {
  it("create 1 MiB writes the header bytes of §6", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow1", size: MiB });
    await img.close();
    const f = mem.bytes();
    expect(f.length).toBe(V1_HEADER);
    expect(Array.from(f.subarray(0, 12))).toEqual([0x47, 0x4f, 0x57, 0x31, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    expect(f.subarray(12).every((b) => b === 0xff)).toBe(true);
  });

  it("writes land in slots in first-write order, zeros allocate nothing", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow1", size: MiB });
    await img.write(153_600, new Uint8Array(512).fill(0xab));
    await img.flush();
    let f = mem.bytes();
    expect(Array.from(f.subarray(20, 24))).toEqual([0, 0, 0, 0]); // map[2] = slot 0
    expect(Array.from(f.subarray(8, 12))).toEqual([1, 0, 0, 0]); // allocated = 1
    expect(f.subarray(4_216_844, 4_216_844 + 512).every((b) => b === 0xab)).toBe(true);
    const slot0 = f.subarray(V1_HEADER, V1_HEADER + BLOCK);
    expect(slot0.subarray(0, 22_528).every((b) => b === 0)).toBe(true);
    expect(slot0.subarray(22_528 + 512).every((b) => b === 0)).toBe(true);

    await img.write(0, new Uint8Array(512).fill(0xcd));
    await img.flush();
    f = mem.bytes();
    expect(Array.from(f.subarray(12, 16))).toEqual([1, 0, 0, 0]); // map[0] = slot 1
    expect(Array.from(f.subarray(8, 12))).toEqual([2, 0, 0, 0]);
    expect(f.subarray(4_259_852, 4_259_852 + 512).every((b) => b === 0xcd)).toBe(true);

    const before = mem.bytes().slice();
    await img.write(512_000, new Uint8Array(512));
    await img.flush();
    expect(diffAt(mem.bytes(), before)).toBe(-1);
    await img.writeZeroes(7 * BLOCK, BLOCK);
    await img.flush();
    expect(diffAt(mem.bytes(), before)).toBe(-1);

    expect(Array.from(await img.read(153_600, 4))).toEqual([0xab, 0xab, 0xab, 0xab]);
    expect(Array.from(await img.read(0, 2))).toEqual([0xcd, 0xcd]);
    expect((await img.read(512_000, 512)).every((b) => b === 0)).toBe(true);
    await img.close();
  });
});

describe("gow zero-block rule inside larger writes", () => {
  it("a write spanning data, zero and data blocks allocates only the data blocks, in order", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow1", size: 8 * BLOCK });
    const d = new Uint8Array(3 * BLOCK + 100);
    d.fill(1, 0, BLOCK);
    d.fill(2, 2 * BLOCK, 3 * BLOCK + 100);
    await img.write(BLOCK, d);
    await img.flush();
    const f = mem.bytes();
    expect(u32(f, 8)).toBe(3); // blocks 1, 3, 4 hold data; block 2 stays free
    expect([u32(f, 12 + 4), u32(f, 12 + 8) >>> 0, u32(f, 12 + 12), u32(f, 12 + 16)]).toEqual([0, 0xffffffff, 1, 2]);
    expect(diffAt(await img.read(BLOCK, d.length), d)).toBe(-1);
    await img.close();
  });
});

describe("gow create", () => {
  it("refuses a backing file, encryption and sizes out of range", async () => {
    await expectCode(createImage(new MemoryBackend(), { format: "gow1", size: 512 }), "ERR_OUT_OF_RANGE", /below one 64 KiB block/);
    await expectCode(createImage(new MemoryBackend(), { format: "gow1", size: 64 * 2 ** 30 + 1 }), "ERR_OUT_OF_RANGE", /largest gow1 disk/);
    await expectCode(createImage(new MemoryBackend(), { format: "gow1", size: MiB, options: "encryption=on" }), "ERR_UNSUPPORTED_FEATURE");
    const base = new MemoryBackend(new Uint8Array(MiB), { name: "base.raw" });
    await expectCode(
      createImage(new MemoryBackend(), {
        format: "gow1",
        backingFile: "base.raw",
        backingFormat: "raw",
        backing: "any",
        openFile: async () => base,
      }),
      "ERR_UNSUPPORTED_FEATURE",
    );
  });

  it("rounds the size up to whole blocks", async () => {
    const warnings: string[] = [];
    const img = await createImage(new MemoryBackend(), { format: "gow1", size: 100_000, warn: (m) => warnings.push(m) });
    expect(img.size).toBe(2 * BLOCK);
    expect(warnings.join()).toMatch(/rounded up/);
    await img.close();
  });

  it("gow2 puts the data area at 16,777,728 and records 'GOW2'", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow2", size: 3 * BLOCK });
    await img.write(BLOCK + 5, new Uint8Array([9, 8, 7]));
    await img.close();
    const f = mem.bytes();
    expect(Array.from(f.subarray(0, 8))).toEqual([0x47, 0x4f, 0x57, 0x32, 3, 0, 0, 0]);
    expect(u32(f, 12 + 4)).toBe(0); // map[1] = slot 0
    expect(f.subarray(16_777_228, V2_BASE).every((b) => b === 0)).toBe(true);
    expect(Array.from(f.subarray(V2_BASE + 5, V2_BASE + 8))).toEqual([9, 8, 7]);
    expect(f.length).toBe(V2_BASE + BLOCK);
    const again = await openImage(new MemoryBackend(f), { readOnly: true });
    expect(again.format).toBe("gow2");
    expect(Array.from(await again.read(BLOCK + 5, 3))).toEqual([9, 8, 7]);
  });
});

describe("gow behaviour", () => {
  it("reports image full when every slot is used, after a shrink kept the counter", async () => {
    const img = await createImage(new MemoryBackend(), { format: "gow1", size: 4 * BLOCK });
    for (let b = 0; b < 4; b++) await img.write(b * BLOCK, new Uint8Array([b + 1]));
    await img.resize!(2 * BLOCK);
    await img.resize!(4 * BLOCK);
    expect((await img.read(3 * BLOCK, 1))[0]).toBe(0); // freed by the shrink
    await expectCode(img.write(3 * BLOCK, new Uint8Array([1])), "ERR_IMAGE_FULL", /image full/);
    expect((await img.read(BLOCK, 1))[0]).toBe(2);
    const c = await img.check();
    expect(c.corruptions).toBe(0);
    expect(c.leaks).toBe(2); // slots 2 and 3 lost their blocks
    await img.close();
  });

  it("resize grows up to MAXBLOCKS, rounds up and refuses beyond", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow1", size: BLOCK });
    await img.write(10, new Uint8Array([5]));
    await img.resize!(3 * BLOCK + 1);
    expect(img.size).toBe(4 * BLOCK);
    await img.write(3 * BLOCK, new Uint8Array([6]));
    await expectCode(img.resize!(64 * 2 ** 30 + BLOCK), "ERR_OUT_OF_RANGE");
    await img.close();
    expect(u32(mem.bytes(), 4)).toBe(4);
    const r = await openImage(new MemoryBackend(mem.bytes()), { format: "gow1", readOnly: true });
    expect(r.size).toBe(4 * BLOCK);
    expect((await r.read(10, 1))[0]).toBe(5);
    expect((await r.read(3 * BLOCK, 1))[0]).toBe(6);
  });

  it("map shows allocated blocks as data at their slots and free blocks as zero", async () => {
    const img = await createImage(new MemoryBackend(), { format: "gow1", size: 8 * BLOCK });
    await img.write(5 * BLOCK, fillPattern(BLOCK, 1));
    await img.write(2 * BLOCK, fillPattern(10, 2));
    const ext = [];
    for await (const e of img.extents()) ext.push({ offset: e.offset, length: e.length, data: e.data, fileOffset: e.fileOffset });
    expect(ext).toEqual([
      { offset: 0, length: 2 * BLOCK, data: false, fileOffset: undefined },
      { offset: 2 * BLOCK, length: BLOCK, data: true, fileOffset: V1_HEADER + BLOCK },
      { offset: 3 * BLOCK, length: 2 * BLOCK, data: false, fileOffset: undefined },
      { offset: 5 * BLOCK, length: BLOCK, data: true, fileOffset: V1_HEADER },
      { offset: 6 * BLOCK, length: 2 * BLOCK, data: false, fileOffset: undefined },
    ]);
    await img.close();
  });

  it("check reports an orphan tail as a leak and -r trims it", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow1", size: 4 * BLOCK });
    await img.write(0, new Uint8Array([1]));
    await img.close();
    const f = mem.bytes();
    // A crash between the data of slot 1 and the counter: a slot past `allocated`.
    const crashed = new Uint8Array(f.length + BLOCK);
    crashed.set(f);
    crashed.fill(7, f.length);
    const back = new MemoryBackend(crashed);
    const img2 = await openImage(back, { format: "gow1" });
    const c = await img2.check();
    expect(c).toMatchObject({ corruptions: 0, leaks: 1 });
    const fixed = await img2.check("leaks");
    expect(fixed).toMatchObject({ corruptions: 0, leaks: 0, leaksFixed: 1 });
    expect(await back.size()).toBe(V1_HEADER + BLOCK);
    // The next new block reuses slot 1 and reads zeros where it was not written.
    await img2.write(3 * BLOCK + 100, new Uint8Array([2]));
    const blk = await img2.read(3 * BLOCK, BLOCK);
    expect(blk[100]).toBe(2);
    expect(blk.filter((b) => b !== 0).length).toBe(1);
    expect((await img2.check()).leaks).toBe(0);
    await img2.close();
  });

  it("round-trips random writes against a model, through a reopen, check clean", async () => {
    for (const format of ["gow1", "gow2"]) {
      const size = 16 * BLOCK;
      const mem = new MemoryBackend();
      const raw = fillPattern(size, 3);
      for (let b = 0; b < 16; b += 3) raw.fill(0, b * BLOCK, (b + 1) * BLOCK); // some zero blocks
      const img = await createImage(mem, { format, size });
      await img.write(0, raw);
      const model = raw.slice();
      const r = seeded(format.length * 7);
      for (let i = 0; i < 60; i++) {
        const len = 1 + Math.floor(r() * 3 * BLOCK);
        const off = Math.floor(r() * (size - len));
        if (r() < 0.2) {
          await img.writeZeroes(off, len);
          model.fill(0, off, off + len);
        } else {
          const d = fillPattern(len, i);
          await img.write(off, d);
          model.set(d, off);
        }
        if (r() < 0.1) await img.flush();
      }
      expect(diffAt(await img.read(0, size), model)).toBe(-1);
      await img.close();
      const again = await openImage(new MemoryBackend(mem.bytes()), { readOnly: true });
      expect(again.format).toBe(format);
      expect(diffAt(await again.read(0, size), model)).toBe(-1);
      expect(await again.check()).toMatchObject({ corruptions: 0, leaks: 0 });
    }
  });
});

describe("gow probing and foreign magics", () => {
  async function v1Image(): Promise<Uint8Array> {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "gow1", size: 4 * BLOCK });
    await img.write(BLOCK, new Uint8Array([0x5a]));
    await img.close();
    return mem.bytes().slice();
  }

  it("probing finds gow1 by the project's magic and ignores other magics", async () => {
    const f = await v1Image();
    expect((await openImage(new MemoryBackend(f.slice()), { readOnly: true })).format).toBe("gow1");
    const foreign = f.slice();
    foreign.set([0x56, 0x42, 0x47, 0x31], 0);
    expect((await openImage(new MemoryBackend(foreign), { readOnly: true })).format).toBe("raw");
  });

  it("-f gow1 accepts an unknown magic with a structurally valid header, with a warning", async () => {
    const f = await v1Image();
    f.set([0x56, 0x42, 0x47, 0x31], 0);
    const warnings: string[] = [];
    const img = await openImage(new MemoryBackend(f), { format: "gow1", readOnly: true, warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/0x31474256 \("VBG1"\)/);
    expect((await img.read(BLOCK, 1))[0]).toBe(0x5a);
    const info = await img.info();
    expect(info.formatSpecific?.data["magic-recognised"]).toBe(false);
  });

  it("-f gow1 refuses an unknown magic whose header fails the structural checks", async () => {
    const f = await v1Image();
    f.set([0x56, 0x42, 0x47, 0x31], 0);
    f.set([0x05, 0, 0, 0], 8); // allocated 5 > size 4
    await expectCode(openImage(new MemoryBackend(f), { format: "gow1", readOnly: true }), "ERR_NOT_AN_IMAGE", /structural checks/);
  });

  it("a GOW3 magic gives a clear unsupported-version error, probed or named", async () => {
    const f = await v1Image();
    f[3] = 0x33;
    await expectCode(openImage(new MemoryBackend(f.slice()), { readOnly: true }), "ERR_UNSUPPORTED_FEATURE", /unsupported GOW version 3/);
    await expectCode(openImage(new MemoryBackend(f.slice()), { format: "gow2", readOnly: true }), "ERR_UNSUPPORTED_FEATURE", /unsupported GOW version 3/);
  });

  it("-f gow2 on a gow1 image names the right format", async () => {
    await expectCode(openImage(new MemoryBackend(await v1Image()), { format: "gow2", readOnly: true }), "ERR_NOT_AN_IMAGE", /open it as gow1/);
  });

  it("info shows the provenance of every project decision", async () => {
    const img = await createImage(new MemoryBackend(), { format: "gow1", size: BLOCK });
    const data = (await img.info()).formatSpecific!.data;
    expect(data.magic).toBe('0x31574f47 ("GOW1")');
    const prov = data.provenance as Record<string, string>;
    expect(prov.magic).toMatch(/^\[decision\]/);
    expect(prov["free-marker"]).toMatch(/^\[decision\]/);
    expect(prov["create-rounding"]).toMatch(/^\[decision\]/);
    await img.close();
  });
});
