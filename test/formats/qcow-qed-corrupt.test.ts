/**
 * Bad input for QCOW (v1) and QED: the header pokes of QEMU iotests 092 and 116 (on images vdisk
 * makes, so they run without qemu), other damaged headers and tables, and random mutations and
 * truncations of small images. Every failure must be an ImageError with a message naming the
 * problem; nothing may hang or allocate by an unchecked size.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";
import { isImageError } from "../../src/errors.js";
import { pattern, randInt, rng } from "./image-model.js";

async function made(format: string, size: number, options = "", fill?: (img: Awaited<ReturnType<typeof createImage>>) => Promise<void>) {
  const mem = new MemoryBackend();
  const img = await createImage(mem, { format, size, options });
  if (fill) await fill(img);
  await img.close();
  return mem.bytes().slice();
}

async function openError(bytes: Uint8Array, format: string): Promise<Error & { code?: string }> {
  return openImage(new MemoryBackend(bytes), { format, readOnly: true }).then(
    async (img) => {
      await img.close();
      throw new Error("the image opened");
    },
    (e: Error) => e,
  );
}

function poked(b: Uint8Array, at: number, bytes: number[]): Uint8Array {
  const c = b.slice();
  c.set(bytes, at);
  return c;
}

describe("qcow bad input", () => {
  it("iotest 092 pokes give qemu's messages", async () => {
    const b = await made("qcow", 64 << 20);
    const cases: Array<[number, number[], RegExp]> = [
      [32, [0xff], /Cluster size must be between 512 and 64k/],
      [32, [0x1f], /Cluster size must be between 512 and 64k/],
      [32, [0x08], /Cluster size must be between 512 and 64k/],
      [32, [0x11], /Cluster size must be between 512 and 64k/],
      [33, [0xff], /L2 table size must be between 512 and 64k/],
      [33, [0x05], /L2 table size must be between 512 and 64k/],
      [33, [0x0e], /L2 table size must be between 512 and 64k/],
      [33, [0x1b], /L2 table size must be between 512 and 64k/],
      [24, Array(8).fill(0xee), /Image too large/],
      [24, [0x7f, ...Array(7).fill(0xff)], /Image too large/],
    ];
    for (const [at, bytes, msg] of cases) {
      const e = await openError(poked(b, at, bytes), "qcow");
      expect(isImageError(e), `${at}: ${e}`).toBe(true);
      expect(e.message).toMatch(msg);
    }
    const long = poked(poked(b, 8, [0, 0, 0, 0xff]), 16, [0xff, 0xff, 0xff, 0xff]);
    expect((await openError(long, "qcow")).message).toMatch(/Backing file name too long/);
    const long2 = poked(poked(b, 8, [0, 0, 0, 0xff]), 16, [0x7f, 0xff, 0xff, 0xff]);
    expect((await openError(long2, "qcow")).message).toMatch(/Backing file name too long \(2147483647 bytes, the limit is 1023\)/);
  });

  it("refuses AES images, other versions and unknown encryption with clear codes", async () => {
    const b = await made("qcow", 1 << 20);
    expect((await openError(poked(b, 36, [0, 0, 0, 1]), "qcow")).code).toBe("ERR_UNSUPPORTED_FEATURE");
    const bad = await openError(poked(b, 36, [0, 0, 0, 2]), "qcow");
    expect([bad.code, bad.message]).toEqual(["ERR_CORRUPT_IMAGE", expect.stringMatching(/invalid encryption method 2/)]);
    const v2 = await openError(poked(b, 4, [0, 0, 0, 2]), "qcow");
    expect([v2.code, v2.message]).toEqual(["ERR_UNSUPPORTED_FEATURE", expect.stringMatching(/qcow version 2; open it as qcow2/)]);
    expect((await openError(poked(b, 0, [0x51, 0x46, 0x49, 0x00]), "qcow")).code).toBe("ERR_NOT_AN_IMAGE");
  });

  it("bounds the L1 table by a limit and by the file before reading it", async () => {
    const b = await made("qcow", 1 << 20);
    // 2^52 bytes with 512-byte clusters and 64-entry L2 tables: an L1 table of 1 TiB.
    const huge = poked(poked(b, 24, [0, 0x10, 0, 0, 0, 0, 0, 0]), 32, [9, 6]);
    const e = await openError(huge, "qcow");
    expect([e.code, e.message]).toEqual(["ERR_LIMIT_EXCEEDED", expect.stringMatching(/L1 table of 1 TiB exceeds the limit of 32 MiB/)]);
    const past = await openError(poked(b, 40, [0, 0, 0, 0, 0, 0x10, 0, 0]), "qcow");
    expect([past.code, past.message]).toEqual(["ERR_CORRUPT_IMAGE", expect.stringMatching(/L1 table at offset 1048576 .* lies outside the file/)]);
    expect((await openError(b.subarray(0, 40), "qcow")).message).toMatch(/header \(48 bytes\) extends past the end of the file/);
  });

  it("a table entry pointing outside the file fails the read with the offset named", async () => {
    const b = await made("qcow", 1 << 20, "", (img) => img.write(0, pattern(4096, 1)));
    const v = new DataView(b.buffer);
    v.setBigUint64(48, 1n << 40n, false); // L1 entry 0
    const img = await openImage(new MemoryBackend(b), { format: "qcow", readOnly: true });
    const e = await img.read(0, 512).catch((x: Error) => x);
    expect(isImageError(e) && e.message).toMatch(/L2 table at offset 1099511627776 \(L1 entry 0\) extends past the end of the file/);
    await img.close();
  });

  it("a damaged compressed cluster fails its read with an ImageError", async () => {
    const b = await made("qcow", 64 * 1024, "", (img) => img.writeCompressed(0, new Uint8Array(64 * 1024).fill(7)));
    // The compressed streams sit after the L2 table at 4096: scribble over them.
    b.fill(0xff, 8192, 8192 + 20);
    const img = await openImage(new MemoryBackend(b), { format: "qcow", readOnly: true });
    const e = await img.read(0, 4096).catch((x: Error) => x);
    expect(isImageError(e) && e.message).toMatch(/compressed cluster at offset \d+ .*(damaged|inflates)/);
    await img.close();
  });
});

describe("qed bad input", () => {
  it("iotest 116 pokes give qemu's messages", async () => {
    const b = await made("qed", 128 << 20);
    const cases: Array<[Uint8Array, RegExp]> = [
      [b.subarray(0, 512), /QED table offset is invalid/],
      [poked(b, 0, [0x51, 0x45, 0x44, 0x58]), /Image not in QED format/],
      [poked(b, 4, [0xff, 0xff, 0xff, 0xff]), /QED cluster size is invalid/],
      [poked(b, 8, [0xff, 0xff, 0xff, 0xff]), /QED table size is invalid/],
      [poked(b, 12, [0xff, 0xff, 0xff, 0xff]), /QED table offset is invalid/],
      [poked(b, 40, Array(8).fill(0xff)), /QED table offset is invalid/],
      [poked(b, 48, Array(8).fill(0xff)), /QED image size is invalid/],
    ];
    for (const [bytes, msg] of cases) {
      const e = await openError(bytes.slice(), "qed");
      expect(isImageError(e), String(e)).toBe(true);
      expect(e.message).toMatch(msg);
    }
  });

  it("checks the backing name against the header area and the header size", async () => {
    const b = await made("qed", 1 << 20, "cluster_size=4k");
    const withName = poked(poked(b, 16, [1]), 56, [0xf0, 0x0f, 0, 0, 0x20, 0, 0, 0]); // 32 bytes at 4080
    expect((await openError(withName, "qed")).message).toMatch(/QED backing filename offset is invalid/);
    expect((await openError(poked(b, 12, [0, 0, 0, 0]), "qed")).message).toMatch(/QED header size is invalid/);
  });

  it("an invalid L2 offset in a clean image fails the read; check names it", async () => {
    const b = await made("qed", 1 << 20, "cluster_size=4k", (img) => img.write(0, pattern(4096, 1)));
    const v = new DataView(b.buffer);
    v.setBigUint64(4096, 4096n * 1000n, true); // L1 entry 0 past the end
    const img = await openImage(new MemoryBackend(b), { format: "qed", readOnly: true });
    const e = await img.read(0, 512).catch((x: Error) => x);
    expect(isImageError(e) && e.message).toMatch(/L1 entry 0 names an invalid L2 table offset 4096000/);
    const c = await img.check();
    expect(c.corruptions).toBe(1);
    expect(c.messages.join()).toMatch(/invalid L2 table offset 4096000/);
    await img.close();
  });
});

describe("random damage", () => {
  const images: Array<[string, string, () => Promise<Uint8Array>]> = [
    ["qcow", "4k", () => made("qcow", 512 * 1024, "", async (img) => {
      await img.write(1000, pattern(70000, 1));
      await img.write(300000, pattern(5000, 2));
    })],
    ["qcow", "compressed", () => made("qcow", 128 * 1024, "", (img) => img.writeCompressed(0, pattern(128 * 1024, 3).map((x) => x & 3)))],
    ["qcow", "512", () => made("qcow", 256 * 1024, "cluster_size=512", (img) => img.write(777, pattern(20000, 4)))],
    ["qed", "ts1", () => made("qed", 1 << 20, "cluster_size=4k,table_size=1", async (img) => {
      await img.write(5000, pattern(30000, 5));
      await img.writeZeroes(200000, 8192);
    })],
    ["qed", "ts4", () => made("qed", 4 << 20, "cluster_size=4k", async (img) => {
      await img.write(0, pattern(10000, 6));
      await img.write(3 << 20, pattern(9000, 7));
    })],
  ];
  for (const [format, label, make] of images) {
    it(`${format} ${label}: mutated and truncated copies fail cleanly or read`, { timeout: 30_000 }, async () => {
      const good = await make();
      const r = rng(label.length * 31 + format.length);
      let opened = 0;
      let refused = 0;
      let errors = 0;
      const onError = (e: unknown) => {
        expectImageError(e);
        errors++;
      };
      for (let i = 0; i < 150; i++) {
        let b = good.slice();
        if (i % 5 === 4) {
          b = b.subarray(0, randInt(r, b.length));
        } else {
          const n = 1 + randInt(r, 6);
          for (let k = 0; k < n; k++) {
            // Mostly metadata: the header, the L1 table and the first tables.
            const at = r() < 0.7 ? randInt(r, Math.min(b.length, 64 * 1024)) : randInt(r, b.length);
            b[at] = r() < 0.3 ? 0xff : randInt(r, 256);
          }
        }
        try {
          // Every other copy opens writable: a qed image with need-check set is then repaired.
          const writable = i % 2 === 1;
          const img = await openImage(new MemoryBackend(b), { format, readOnly: !writable, warn: () => {} });
          opened++;
          try {
            if (writable) await img.write(randInt(r, Math.max(1, img.size - 5000)), pattern(Math.min(5000, img.size), i)).catch(onError);
            const n = Math.min(img.size, 1 << 20);
            for (let p = 0; p < n; p += 65536) await img.read(p, Math.min(65536, n - p)).catch(onError);
            let k = 0;
            try {
              for await (const _ of img.extents()) if (++k > 2000) break;
            } catch (e) {
              onError(e);
            }
            await img.check().catch(onError);
          } finally {
            await img.close();
          }
        } catch (e) {
          expectImageError(e);
          refused++;
        }
      }
      expect(opened + refused).toBe(150);
      // The damage was noticed somewhere (open, read, map or check).
      expect(refused + errors).toBeGreaterThan(0);
    });
  }
});

function expectImageError(e: unknown): void {
  if (!isImageError(e)) throw new Error(`expected an ImageError, got ${e instanceof Error ? e.stack : String(e)}`);
  expect(e.message.length).toBeGreaterThan(10);
}
