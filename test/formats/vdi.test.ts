import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import { writeFileSync } from "node:fs";
import { HAVE_QEMU, qemuImgStatus, tempDir } from "../helpers/qemu.js";
import { expectContents, expectExtentsAgree, pattern, randomOps, rng } from "./image-model.js";

const MIB = 1 << 20;

async function newVdi(size: number, options = ""): Promise<{ img: BlockDevice; mem: MemoryBackend }> {
  const mem = new MemoryBackend(new Uint8Array(0), { name: "t.vdi" });
  const img = await createImage(mem, { format: "vdi", size, options });
  return { img, mem };
}

function open(bytes: Uint8Array, readOnly = false): Promise<BlockDevice> {
  return openImage(new MemoryBackend(bytes, { name: "t.vdi" }), { format: "vdi", readOnly });
}

function le32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);
}

describe("VDI life cycle", () => {
  for (const isStatic of [false, true]) {
    it(`a ${isStatic ? "static" : "dynamic"} VDI reads back random writes and checks clean after reopen`, async () => {
      const { img, mem } = await newVdi(7 * MIB + 512, `static=${isStatic ? "on" : "off"}`);
      expect(img.size).toBe(7 * MIB + 512);
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(isStatic ? 11 : 12), { ops: 50, maxLength: 2 * MIB, zeroShare: 0.2 });
      await expectContents(img, model);
      await expectExtentsAgree(img, model);
      await img.close();
      const again = await open(mem.bytes().slice());
      await expectContents(again, model);
      const res = await again.check();
      expect([res.corruptions, res.leaks, res.checkErrors]).toEqual([0, 0, 0]);
      if (isStatic) expect(mem.bytes().length).toBe(512 + 512 + 8 * MIB);
    });
  }

  it("new blocks are appended in write order and the file holds whole blocks", async () => {
    const { img, mem } = await newVdi(4 * MIB + 512);
    await img.write(4 * MIB, pattern(512, 1)); // the partial last block first
    await img.write(0, pattern(100, 2));
    await img.close();
    const b = mem.bytes();
    const dv = new DataView(b.buffer, b.byteOffset);
    expect(dv.getUint32(388, true)).toBe(2); // blocks allocated
    expect([dv.getUint32(512 + 16, true), dv.getUint32(512, true)]).toEqual([0, 1]);
    expect(b.length).toBe(1024 + 2 * MIB);
  });

  it("create rounds the size up to a sector and refuses sizes past QEMU's maximum", async () => {
    expect((await newVdi(1000)).img.size).toBe(1024);
    await expect(newVdi(0x1fffff8000000 + 512)).rejects.toThrow(
      "Unsupported VDI image size (size is 0x1fffff8000200, max supported is 0x1fffff8000000)",
    );
  });
});

describe("VDI header validation (iotests 084)", () => {
  async function base(): Promise<Uint8Array> {
    const { img, mem } = await newVdi(64 * MIB);
    await img.close();
    return mem.bytes().slice();
  }

  it("a 512 TiB disk with enough blocks opens (without reading a 2 GiB block map) and refuses writes", async () => {
    const b = await base();
    b.set([0x00, 0x00, 0x00, 0xf8, 0xff, 0xff, 0x01, 0x00], 368);
    b.set([0x80, 0xff, 0xff, 0x1f], 384);
    const img = await open(b);
    expect(img.size).toBe(562949819203584);
    expect((await img.read(0, 4096)).every((x) => x === 0)).toBe(true);
    await expect(img.write(300 * MIB, pattern(10, 1))).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
  });

  it.each([
    [[[368, [0x00, 0x00, 0x01, 0xf8, 0xff, 0xff, 0x01, 0x00]]], "Unsupported VDI image size (size is 0x1fffff8010000, max supported is 0x1fffff8000000)"],
    [[[368, [0, 0, 0, 4, 0, 0, 0, 0]], [384, [0x3f, 0, 0, 0]]], "unsupported VDI image (disk size 67108864, image bitmap has room for 66060288)"],
    [[[384, [0x81, 0xff, 0xff, 0x1f]]], "unsupported VDI image (too many blocks 536870785, max is 536870784)"],
    [[[376, [0xff, 0xff, 0x0f, 0x00]]], "unsupported VDI image (block size 1048575 is not 1048576)"],
    [[[376, [0x00, 0x00, 0x11, 0x00]]], "unsupported VDI image (block size 1114112 is not 1048576)"],
    [[[64, [1, 2, 3, 4]]], "Image not in VDI format (bad signature 04030201)"],
  ] as Array<[Array<[number, number[]]>, string]>)("poke %j gives '%s'", async (pokes, msg) => {
    const b = await base();
    for (const [at, bytes] of pokes) b.set(bytes, at);
    await expect(open(b)).rejects.toThrow(msg);
  });

  it("64 blocks of 1 MiB open as 64 MiB", async () => {
    const b = await base();
    b.set([64, 0, 0, 0], 384);
    b.set([0, 0, 0x10, 0], 376);
    expect((await open(b)).size).toBe(64 * MIB);
  });
});

describe("VDI check and repair", () => {
  async function written(): Promise<Uint8Array> {
    const { img, mem } = await newVdi(8 * MIB);
    for (let i = 0; i < 4; i++) await img.write(i * 2 * MIB, pattern(1000, i + 1));
    await img.close();
    return mem.bytes().slice();
  }

  it("an interrupted allocation (header counted, map not written) is the mismatch qemu-img reports; -r all fixes it", async () => {
    const b = await written();
    le32(b, 388, 5); // header says 5 blocks, the map uses 4
    const extended = new Uint8Array(b.length + MIB);
    extended.set(b);
    if (HAVE_QEMU) {
      const tmp = tempDir();
      try {
        writeFileSync(tmp.path("a.vdi"), extended);
        const q = qemuImgStatus("check", "-f", "vdi", tmp.path("a.vdi"));
        expect(q.status).toBe(2);
        expect(q.stderr).toMatch(/ERROR: allocated blocks mismatch, is 4, should be 5/);
      } finally {
        tmp.cleanup();
      }
    }
    const img = await open(extended);
    const res = await img.check();
    expect([res.corruptions, res.leaks]).toEqual([1, 0]);
    expect(res.messages).toEqual(["ERROR: allocated blocks mismatch, is 4, should be 5"]);
    expect((await img.check("leaks")).corruptions).toBe(1);
    const fixed = await img.check("all");
    expect([fixed.corruptionsFixed, fixed.corruptions, fixed.leaks]).toEqual([1, 0, 0]);
    expect(await (img as unknown as { instance: { file: MemoryBackend } }).instance.file.size()).toBe(1024 + 4 * MIB);
    expect((await img.check()).corruptions).toBe(0);
    for (let i = 0; i < 4; i++) expect(await img.read(i * 2 * MIB, 1000)).toEqual(pattern(1000, i + 1));
  });

  it("a header undercounting the map is the mismatch qemu-img reports, and no leak", async () => {
    const b = await written();
    le32(b, 388, 3); // header says 3 blocks, the map uses 4
    const img = await open(b);
    const res = await img.check();
    expect([res.corruptions, res.leaks]).toEqual([1, 0]);
    expect(res.messages).toEqual(["ERROR: allocated blocks mismatch, is 4, should be 3"]);
    const fixed = await img.check("all");
    expect([fixed.corruptionsFixed, fixed.corruptions, fixed.leaks]).toEqual([1, 0, 0]);
    for (let i = 0; i < 4; i++) expect(await img.read(i * 2 * MIB, 1000)).toEqual(pattern(1000, i + 1));
  });

  it("-r all compacts unused blocks in the middle of the data area", async () => {
    const b = await written();
    le32(b, 512 + 4 * 2, 0xffffffff); // guest block 2 (data block 1) dropped from the map
    const img = await open(b);
    expect((await img.check()).corruptions).toBe(1);
    const fixed = await img.check("all");
    expect(fixed.corruptionsFixed).toBe(1);
    expect(await (img as unknown as { instance: { file: MemoryBackend } }).instance.file.size()).toBe(1024 + 3 * MIB);
    for (const i of [0, 2, 3]) expect(await img.read(i * 2 * MIB, 1000)).toEqual(pattern(1000, i + 1));
    expect((await img.check()).corruptions + (await img.check()).leaks).toBe(0);
  });

  it("-r all drops entries past the image and gives duplicated blocks their own copy", async () => {
    const b = await written();
    le32(b, 512 + 4 * 5, 2); // guest block 5 shares data block 2 with guest block 4
    le32(b, 512 + 4 * 7, 1234); // guest block 7 points past the image
    const img = await open(b);
    const res = await img.check();
    expect(res.corruptions).toBe(2);
    expect(res.messages.join("\n")).toMatch(/block index 7 too large, is 1234/);
    expect(res.messages.join("\n")).toMatch(/block index 4 also used by 5/);
    const fixed = await img.check("all");
    expect([fixed.corruptions, fixed.corruptionsFixed]).toEqual([0, 2]);
    expect(await img.read(5 * MIB, 1000)).toEqual(pattern(1000, 3)); // the copy
    await img.write(5 * MIB, pattern(10, 9)); // and it is independent
    expect(await img.read(4 * MIB, 1000)).toEqual(pattern(1000, 3));
    const after = await img.check();
    expect(after.corruptions + after.leaks).toBe(0);
  });
});
