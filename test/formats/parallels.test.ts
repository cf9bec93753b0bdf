import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import { expectContents, expectExtentsAgree, firstDifference, pattern, randomOps, rng } from "./image-model.js";

const MIB = 1 << 20;

async function newHds(size: number, options = ""): Promise<{ img: BlockDevice; mem: MemoryBackend }> {
  const mem = new MemoryBackend(new Uint8Array(0), { name: "t.hds" });
  const img = await createImage(mem, { format: "parallels", size, options });
  return { img, mem };
}

function open(bytes: Uint8Array, opts: { readOnly?: boolean; warn?: (m: string) => void } = {}): Promise<BlockDevice> {
  return openImage(new MemoryBackend(bytes, { name: "t.hds" }), { format: "parallels", ...opts });
}

/** Byte equality without vitest's slow deep diff of large arrays. */
const same = (a: Uint8Array, b: Uint8Array) => firstDifference(a, b) === -1;
const fill = (v: number) => new Uint8Array(MIB).fill(v);

const le32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const setLe32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);

describe("Parallels life cycle", () => {
  for (const cluster of ["64k", "1M"]) {
    it(`an image with ${cluster} clusters reads back random writes, zeroes and discards, and checks clean`, async () => {
      const { img, mem } = await newHds(7 * MIB + 512 * 3, `cluster_size=${cluster}`);
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(cluster === "1M" ? 21 : 22), { ops: 60, maxLength: 2 * MIB, zeroShare: 0.25 });
      await img.discard(MIB, 2 * MIB);
      // Discarded whole clusters read as zeros (the format has no backing file to expose).
      const cs = cluster === "1M" ? MIB : 65536;
      model.fill(0, Math.ceil(MIB / cs) * cs, Math.floor((3 * MIB) / cs) * cs);
      await expectContents(img, model);
      await expectExtentsAgree(img, model);
      await img.close();
      const bytes = mem.bytes().slice();
      expect(le32(bytes, 44)).toBe(0); // in-use flag cleared on close
      const again = await open(bytes);
      await expectContents(again, model);
      const res = await again.check();
      expect([res.corruptions, res.leaks]).toEqual([0, 0]);
    });
  }

  it("a read-write open sets the in-use flag until close, and discarded clusters are reused", async () => {
    const { img, mem } = await newHds(4 * MIB, "cluster_size=1M");
    await img.write(0, pattern(MIB, 1));
    await img.write(MIB, pattern(MIB, 2));
    expect(le32(mem.bytes(), 44)).toBe(0x746f6e59);
    const sizeBefore = mem.bytes().length;
    await img.discard(0, MIB);
    await img.write(3 * MIB, pattern(MIB, 3));
    expect(mem.bytes().length).toBe(sizeBefore); // the freed cluster was reused
    expect(same(await img.read(3 * MIB, MIB), pattern(MIB, 3))).toBe(true);
    expect(same(await img.read(MIB, MIB), pattern(MIB, 2))).toBe(true);
    await img.close();
    expect(le32(mem.bytes(), 44)).toBe(0);
  });

  it("the in-use flag is set by the first change of a read-write open, not by the open", async () => {
    const { img: created, mem: made } = await newHds(4 * MIB, "cluster_size=1M");
    await created.write(0, pattern(MIB, 1));
    await created.close();
    const mem = new MemoryBackend(made.bytes().slice(), { name: "t.hds" });
    const img = await openImage(mem, { format: "parallels" });
    await img.read(0, MIB);
    await img.flush();
    expect(le32(mem.bytes(), 44)).toBe(0);
    await img.write(10, pattern(100, 2)); // in place: the cluster is allocated
    expect(le32(mem.bytes(), 44)).toBe(0x746f6e59);
    await img.flush();
    expect(le32(mem.bytes(), 44)).toBe(0x746f6e59); // until close
    await img.close();
    expect(le32(mem.bytes(), 44)).toBe(0);
  });

  it("create rounds sizes up to sectors and refuses impossible cluster sizes", async () => {
    const warnings: string[] = [];
    const img = await createImage(new MemoryBackend(), { format: "parallels", size: 1000, warn: (m) => warnings.push(m) });
    expect(img.size).toBe(1024);
    expect(warnings.join()).toMatch(/rounded up/);
    await expect(newHds(MIB, "cluster_size=4G")).rejects.toThrow(/Cluster size is too large/);
    await expect(newHds(2 ** 52, "cluster_size=512")).rejects.toThrow(/Image size is too large for this cluster size/);
  });
});

describe("Parallels repair (qemu parallels-checks cases)", () => {
  async function fourMeg(): Promise<Uint8Array> {
    const { img, mem } = await newHds(4 * MIB, "cluster_size=1M");
    await img.write(0, new Uint8Array(MIB).fill(0x11));
    await img.close();
    return mem.bytes().slice();
  }

  it("a cluster outside the image is dropped on a read-write open and then reads as zero", async () => {
    const b = await fourMeg();
    setLe32(b, 64, 5);
    const warnings: string[] = [];
    const img = await open(b, { warn: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toMatch(/Repairing cluster 0 is outside image/);
    expect((await img.read(0, 4096)).every((x) => x === 0)).toBe(true);
  });

  it("space leaked at the end is reported and cut by -r leaks", async () => {
    const { img, mem } = await newHds(4 * MIB, "cluster_size=1M");
    await img.write(0, new Uint8Array(MIB).fill(0x11));
    await img.write(3 * MIB, new Uint8Array(MIB).fill(0x22));
    await img.close();
    const b = new Uint8Array(mem.bytes().length + MIB);
    b.set(mem.bytes());
    const ro = await open(b.slice(), { readOnly: true });
    const res = await ro.check();
    expect([res.leaks, res.corruptions]).toEqual([1, 0]);
    expect(res.messages).toContain("ERROR space leaked at the end of the image 1048576");
    const mem2 = new MemoryBackend(b.slice());
    const rw = await openImage(mem2, { format: "parallels" });
    const fixed = await rw.check("all");
    expect([fixed.leaksFixed, fixed.leaks]).toEqual([1, 0]);
    await rw.close();
    expect(mem2.bytes().length).toBe(2 * MIB + MIB); // header cluster + 2 data clusters
  });

  it("a duplicated offset is repaired on open: both clusters keep their data and become independent", async () => {
    const b = await fourMeg();
    setLe32(b, 68, le32(b, 64));
    const ro = await open(b.slice(), { readOnly: true });
    const res = await ro.check();
    expect(res.corruptions).toBe(1);
    expect(res.messages).toContain("ERROR duplicate offset in BAT entry 1");
    const warnings: string[] = [];
    const img = await open(b, { warn: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toMatch(/Repairing duplicate offset in BAT entry 1/);
    expect(same(await img.read(MIB, MIB), fill(0x11))).toBe(true);
    await img.write(0, new Uint8Array(MIB).fill(0x33));
    expect(same(await img.read(MIB, MIB), fill(0x11))).toBe(true);
    expect((await img.check()).corruptions).toBe(0);
  });

  it("a bad data_off is repaired on a read-write open and the data still reads", async () => {
    const b = await fourMeg();
    setLe32(b, 48, 0xffffffff);
    const res = await (await open(b.slice(), { readOnly: true })).check();
    expect(res.messages).toContain("ERROR data_off field has incorrect value");
    const warnings: string[] = [];
    const img = await open(b, { warn: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toMatch(/Repairing data_off field has incorrect value/);
    expect(same(await img.read(0, MIB), fill(0x11))).toBe(true);
  });

  it("an image left in use is repaired on a read-write open (iotests 131)", async () => {
    const b = await fourMeg();
    b.set([0x59, 0x6e, 0x6f, 0x74], 0x2c);
    const ro = await open(b.slice(), { readOnly: true });
    expect((await ro.info()).dirty).toBe(true);
    expect((await ro.check()).messages).toContain("ERROR image was not closed correctly");
    const warnings: string[] = [];
    const mem = new MemoryBackend(b);
    const img = await openImage(mem, { format: "parallels", warn: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toMatch(/Repairing image was not closed correctly/);
    expect(same(await img.read(0, MIB), fill(0x11))).toBe(true);
    await img.close();
    expect(le32(mem.bytes(), 0x2c)).toBe(0);
  });
});

describe("Parallels header validation (iotests 076)", () => {
  async function v2(): Promise<Uint8Array> {
    const { img, mem } = await newHds(2 * MIB, "cluster_size=64k");
    await img.close();
    return mem.bytes().slice();
  }

  it.each([
    [[[0x20, [0xff, 0xff, 0xff, 0xff]]], "Catalog too large"],
    [[[0x24, [0xff, 0xff, 0xff, 0xff]], [0x20, [0x01, 0x00, 0x00, 0x40]]], "Catalog too large"],
    [[[0x1c, [0, 0, 0, 0]]], "Invalid image: Zero sectors per track"],
    [[[0x20, [0x00, 0x00, 0x10, 0x00]]], "Catalog of 1048576 entries extends past the end of the file"],
    [[[0x3c, [0xff, 0xff, 0xff, 0x7f]]], "Invalid image: Too big offset"],
    [[[0x10, [3, 0, 0, 0]]], "Image not in Parallels format"],
  ] as Array<[Array<[number, number[]]>, string]>)("poke %j gives '%s'", async (pokes, msg) => {
    const b = await v2();
    for (const [at, bytes] of pokes) b.set(bytes, at);
    await expect(open(b, { readOnly: true })).rejects.toThrow(msg);
  });
});
