/**
 * Layout: when the virtual size is not a multiple of the cluster (qcow2) or grain (VMDK
 * monolithicSparse) size, the file still holds the whole last cluster or grain, as qemu writes
 * it (other readers, 7-Zip and libvmdk among them, reject a file that ends inside one); and
 * `check` reports a file that ends inside a cluster or grain in use, which `-r all` extends.
 */
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";
import { HAVE_QEMU, qemuCheck, tempDir } from "../helpers/qemu.js";

const SIZE = 1000448; // 15 grains of 64 KiB and 17408 bytes; 244.25 clusters of 4 KiB

async function written(format: string, options: string): Promise<MemoryBackend> {
  const mem = new MemoryBackend();
  const img = await createImageOn(mem, { format, size: SIZE, options });
  await img.write(0, new Uint8Array(1000).fill(1));
  await img.write(SIZE - 1000, new Uint8Array(1000).fill(2));
  await img.close();
  return mem;
}

/** End of the host range of the guest's last allocation unit. */
async function lastUnitEnd(mem: MemoryBackend, format: string, unit: number): Promise<number> {
  const img = await openImageOn(new MemoryBackend(mem.bytes().slice()), { format, readOnly: true });
  let end = 0;
  for await (const e of img.extents(SIZE - 1, 1)) {
    if (e.fileOffset !== undefined) end = e.fileOffset - ((SIZE - 1) % unit) + unit;
  }
  await img.close();
  return end;
}

describe("whole clusters and grains at the end of the disk", () => {
  for (const [options, cs] of [["cluster_size=4k", 4096], ["", 65536], ["extended_l2=on", 65536]] as const) {
    it(`qcow2 (-o ${options || "defaults"}) writes the whole last cluster`, async () => {
      const mem = await written("qcow2", options);
      const fileSize = mem.bytes().length;
      expect(fileSize % cs).toBe(0);
      expect(await lastUnitEnd(mem, "qcow2", cs)).toBeLessThanOrEqual(fileSize);
      if (HAVE_QEMU) {
        const tmp = tempDir();
        try {
          writeFileSync(tmp.path("a.qcow2"), mem.bytes());
          const q = qemuCheck(tmp.path("a.qcow2"));
          expect(q.status).toBe(0);
          expect(Number(q.json["image-end-offset"])).toBeLessThanOrEqual(fileSize);
        } finally {
          tmp.cleanup();
        }
      }
    });
  }

  it("vmdk monolithicSparse writes the whole last grain", async () => {
    const mem = await written("vmdk", "");
    const end = await lastUnitEnd(mem, "vmdk", 65536);
    expect(end).toBeGreaterThan(0);
    expect(end).toBeLessThanOrEqual(mem.bytes().length);
  });

  it("qcow2 check reports a file that ends inside a data cluster; -r all extends it", async () => {
    const mem = await written("qcow2", "cluster_size=4k");
    const short = mem.bytes().slice(0, mem.bytes().length - 3072);
    const file = new MemoryBackend(short.slice());
    const img = await openImageOn(file, { format: "qcow2" });
    const c = await img.check();
    expect(c.corruptions).toBe(1);
    expect(c.messages.join()).toMatch(/the file is too short/);
    const fixed = await img.check("all");
    expect([fixed.corruptions, fixed.corruptionsFixed]).toEqual([0, 1]);
    expect(Array.from(await img.read(SIZE - 4, 4))).toEqual([2, 2, 2, 2]);
    await img.close();
    expect(file.bytes().length).toBe(short.length + 3072);
    if (HAVE_QEMU) {
      const tmp = tempDir();
      try {
        writeFileSync(tmp.path("b.qcow2"), file.bytes());
        const q = qemuCheck(tmp.path("b.qcow2"));
        expect(q.status).toBe(0);
        expect(Number(q.json["image-end-offset"])).toBeLessThanOrEqual(file.bytes().length);
      } finally {
        tmp.cleanup();
      }
    }
  });

  it("vmdk check reports a file that ends inside a grain; -r all extends it", async () => {
    const mem = await written("vmdk", "");
    const end = await lastUnitEnd(mem, "vmdk", 65536);
    const short = mem.bytes().slice(0, end - 65536 + 17408);
    const file = new MemoryBackend(short.slice());
    const img = await openImageOn(file, { format: "vmdk" });
    const c = await img.check();
    expect([c.corruptions, c.checkErrors]).toEqual([1, 0]);
    expect(c.messages.join()).toMatch(/ends past the end of the file .*the file is too short/);
    const fixed = await img.check("all");
    expect([fixed.corruptions, fixed.corruptionsFixed]).toEqual([0, 1]);
    expect(Array.from(await img.read(SIZE - 4, 4))).toEqual([2, 2, 2, 2]);
    await img.close();
    expect(file.bytes().length).toBeGreaterThanOrEqual(end);
  });
});
