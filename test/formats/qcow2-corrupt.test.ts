/**
 * Corrupt qcow2 inputs: truncated files, mutated header fields, L1/L2 entries, refcount
 * structures, huge sizes and self-referencing tables. Each gives an ImageError with a useful
 * code, quickly (no hang, no huge allocation); corruption found while writing marks the image
 * corrupt and refuses further writes.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImageOn, isImageError, openImageOn, type ImageDevice } from "../../src/index.js";

const CS = 4096;
const SIZE = 1 << 20;

/** A small image: header 0, refcount table 4k, refcount block 8k, L1 12k, L2 16k, data after. */
async function baseImage(options = "cluster_size=4k"): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  const img = await createImageOn(mem, { format: "qcow2", size: SIZE, options });
  await img.write(0, new Uint8Array(3 * CS).fill(0x5a));
  await img.write(5 * CS + 100, new Uint8Array(100).fill(0x6b));
  await img.close();
  return mem.bytes().slice();
}

function poke(buf: Uint8Array, at: number, bytes: number[] | bigint, width = 8): Uint8Array {
  const b = buf.slice();
  const dv = new DataView(b.buffer);
  if (typeof bytes === "bigint") {
    if (width === 8) dv.setBigUint64(at, bytes);
    else if (width === 4) dv.setUint32(at, Number(bytes));
    else if (width === 1) dv.setUint8(at, Number(bytes));
  } else {
    b.set(bytes, at);
  }
  return b;
}

/** Opens (read-only) and reads everything; returns the error thrown, if any. */
async function tryAll(bytes: Uint8Array, writable = false): Promise<unknown> {
  let img: ImageDevice | undefined;
  try {
    img = await openImageOn(new MemoryBackend(bytes), { format: "qcow2", readOnly: !writable });
    await img.read(0, img.size);
    await img.check();
    if (writable) await img.write(SIZE / 2, new Uint8Array(CS * 2).fill(1));
    return undefined;
  } catch (e) {
    return e;
  } finally {
    await img?.close().catch(() => {});
  }
}

async function expectImageError(bytes: Uint8Array, code: string | RegExp, message?: RegExp, writable = false): Promise<void> {
  const e = await tryAll(bytes, writable);
  expect(isImageError(e), `expected an ImageError, got ${String(e)}`).toBe(true);
  const err = e as { code: string; message: string };
  expect(err.code).toMatch(code);
  if (message) expect(err.message).toMatch(message);
}

describe("corrupt qcow2 inputs", { timeout: 5000 }, () => {
  it("truncated files give ERR_CORRUPT_IMAGE", async () => {
    const b = await baseImage();
    for (const len of [0, 4, 71, 100, 1000, CS + 8, 2 * CS + 16, 3 * CS + 4, 4 * CS + 100]) {
      const e = await tryAll(b.slice(0, len));
      expect(isImageError(e), `length ${len}: ${String(e)}`).toBe(true);
      expect((e as { code: string }).code, `length ${len}`).toMatch(/ERR_CORRUPT_IMAGE|ERR_NOT_AN_IMAGE/);
    }
  });

  it("mutated header fields give clear errors", async () => {
    const b = await baseImage();
    await expectImageError(poke(b, 0, [0, 0, 0, 0]), "ERR_CORRUPT_IMAGE", /magic/);
    await expectImageError(poke(b, 4, 4n, 4), "ERR_UNSUPPORTED_FEATURE", /version 4/);
    await expectImageError(poke(b, 20, 8n, 4), "ERR_UNSUPPORTED_FEATURE", /cluster size/);
    await expectImageError(poke(b, 20, 40n, 4), "ERR_UNSUPPORTED_FEATURE", /cluster size/);
    await expectImageError(poke(b, 24, 1n << 60n), "ERR_CORRUPT_IMAGE", /exceeds 2\^53/);
    await expectImageError(poke(b, 24, 1n << 40n), "ERR_CORRUPT_IMAGE", /L1 table of 1 entries is too small/);
    await expectImageError(poke(b, 32, 1n, 4), "ERR_UNSUPPORTED_FEATURE", /encrypt/);
    await expectImageError(poke(b, 36, 0xffffffffn, 4), "ERR_LIMIT_EXCEEDED", /L1 table of 32 GiB exceeds the limit of 32 MiB/);
    await expectImageError(poke(b, 40, 12289n), "ERR_CORRUPT_IMAGE", /L1 table offset .* not aligned/);
    await expectImageError(poke(b, 40, 1n << 40n), "ERR_CORRUPT_IMAGE", /L1 table .* past the end of the file/);
    await expectImageError(poke(b, 48, 0n), "ERR_CORRUPT_IMAGE", /refcount table offset is 0/);
    await expectImageError(poke(b, 56, 100000n, 4), "ERR_LIMIT_EXCEEDED", /refcount table of .* exceeds the limit of 8 MiB/);
    await expectImageError(poke(b, 56, 0n, 4), "ERR_CORRUPT_IMAGE", /0 clusters/);
    await expectImageError(poke(b, 60, 0xffffffffn, 4), "ERR_LIMIT_EXCEEDED", /snapshots exceed/);
    await expectImageError(poke(poke(b, 60, 3n, 4), 64, 1n << 30n), "ERR_CORRUPT_IMAGE", /snapshot table/);
    await expectImageError(poke(b, 72, 1n << 9n), "ERR_UNSUPPORTED_FEATURE", /incompatible feature bit 9/);
    await expectImageError(poke(b, 96, 7n, 4), "ERR_CORRUPT_IMAGE", /refcount_order 7/);
    await expectImageError(poke(b, 100, 101n, 4), "ERR_CORRUPT_IMAGE", /header_length/);
    await expectImageError(poke(b, 100, 1n << 20n, 4), "ERR_CORRUPT_IMAGE", /header_length/);
    // qemu-img says "Backing file name too long" too.
    await expectImageError(poke(poke(b, 8, 4000n), 16, 5000n, 4), "ERR_CORRUPT_IMAGE", /Backing file name too long \(5000/);
    // compression type field without its incompatible bit
    await expectImageError(poke(b, 104, 1n, 1), "ERR_CORRUPT_IMAGE", /compression/);
  });

  it("a header extension longer than the header cluster is refused", async () => {
    const b = await baseImage();
    const extAt = 112; // first extension (feature name table)
    await expectImageError(poke(b, extAt + 4, 0xfffffff0n, 4), "ERR_CORRUPT_IMAGE", /header extension .* past the end/);
  });

  it("bad L1 entries give ERR_CORRUPT_IMAGE on access", async () => {
    const b = await baseImage();
    const l1 = 3 * CS;
    await expectImageError(poke(b, l1, 0x80000000_00010001n), "ERR_CORRUPT_IMAGE", /L1 entry 0/); // reserved/unaligned
    await expectImageError(poke(b, l1, 0x80000000_40000000n), "ERR_CORRUPT_IMAGE", /L2 table .* past the end/); // beyond EOF
    await expectImageError(poke(b, l1, 0x81000000_00004000n), "ERR_CORRUPT_IMAGE", /reserved/);
  });

  it("an L1 entry pointing at the L1 table itself reads without hanging", async () => {
    const b = await baseImage();
    const e = await tryAll(poke(b, 3 * CS, BigInt(0x80000000_00000000n | BigInt(3 * CS))));
    // The L1 entries read as L2 entries: any outcome but a hang or a non-ImageError is fine.
    if (e !== undefined) expect(isImageError(e), String(e)).toBe(true);
  });

  it("bad L2 entries give ERR_CORRUPT_IMAGE on access", async () => {
    const b = await baseImage();
    const l2 = 4 * CS;
    await expectImageError(poke(b, l2, 0x80000000_00005001n | (1n << 57n)), "ERR_CORRUPT_IMAGE", /reserved bits/);
    await expectImageError(poke(b, l2, 0x80000000_00005100n), "ERR_CORRUPT_IMAGE", /reserved bits|unaligned/);
    // Compressed descriptor pointing at garbage.
    await expectImageError(poke(b, l2, 0x40000000_00000000n | BigInt(2 * CS + 7)), "ERR_CORRUPT_IMAGE", /does not decompress/);
    // Zero flag in a version 2 image.
    const v2 = await baseImage("cluster_size=4k,compat=0.10");
    await expectImageError(poke(v2, 4 * CS, 0x80000000_00005001n), "ERR_CORRUPT_IMAGE", /zero flag in a version 2/);
  });

  it("L2 entries pointing at metadata are never written in place", async () => {
    const b = await baseImage();
    // Guest cluster 0 -> the refcount block (COPIED set).
    const bad = poke(b, 4 * CS, 0x80000000_00000000n | BigInt(2 * CS));
    const img = await openImageOn(new MemoryBackend(bad), { format: "qcow2" });
    await img.read(0, CS);
    await expect(img.write(0, new Uint8Array(10).fill(1))).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    // The image is now marked corrupt: further writes anywhere are refused.
    await expect(img.write(8 * CS, new Uint8Array(10).fill(1))).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    const info = await img.info();
    expect((info.formatSpecific?.data as { corrupt: boolean }).corrupt).toBe(true);
    await img.close();
  });

  it("an image marked corrupt opens read-only but not writable", async () => {
    const b = await baseImage();
    const marked = poke(b, 72, 2n);
    const ro = await openImageOn(new MemoryBackend(marked), { format: "qcow2", readOnly: true });
    expect((await ro.read(0, 4))[0]).toBe(0x5a);
    await ro.close();
    await expect(openImageOn(new MemoryBackend(marked), { format: "qcow2" })).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    // The repair open clears the bit once the image checks clean.
    const rep = await openImageOn(new MemoryBackend(marked), { format: "qcow2", driverOptions: { repair: "on" } });
    const r = await rep.check("all");
    expect(r.corruptions).toBe(0);
    expect((rep.instance as unknown as { corrupt: boolean }).corrupt).toBe(false);
    await rep.write(0, new Uint8Array([1]));
    await rep.close();
  });

  it("corrupt refcount structures are reported by check and refused by writes", async () => {
    const b = await baseImage();
    // Refcount table entry 0 -> the refcount table itself (self-reference).
    const selfRef = poke(b, CS, BigInt(CS));
    let img = await openImageOn(new MemoryBackend(selfRef), { format: "qcow2", readOnly: true });
    const c = await img.check();
    expect(c.corruptions).toBeGreaterThan(0);
    await img.close();
    // Refcount table entry with reserved bits: check counts it, a writing open refuses writes.
    const reserved = poke(b, CS, BigInt(2 * CS + 5));
    img = await openImageOn(new MemoryBackend(reserved), { format: "qcow2", readOnly: true });
    expect((await img.check()).corruptions).toBeGreaterThan(0);
    await img.close();
    await expectImageError(reserved, "ERR_CORRUPT_IMAGE", /refcount/, true);
    // A zeroed refcount block: everything in use has refcount 0.
    const zeroed = b.slice();
    zeroed.fill(0, 2 * CS, 3 * CS);
    img = await openImageOn(new MemoryBackend(zeroed), { format: "qcow2", readOnly: true });
    const z = await img.check();
    expect(z.corruptions).toBeGreaterThan(4);
    await img.close();
    // check -r all rebuilds it.
    img = await openImageOn(new MemoryBackend(zeroed.slice()), { format: "qcow2" });
    const fixed = await img.check("all");
    expect(fixed.corruptions, fixed.messages.join("\n")).toBe(0);
    expect(Array.from(await img.read(5 * CS + 100, 2))).toEqual([0x6b, 0x6b]);
    await img.close();
  });

  it("a snapshot table with a huge entry is bounded", async () => {
    const b = await baseImage();
    // One snapshot entry at cluster 5 with extra_data_size 1 GiB.
    const withSnap = poke(poke(poke(b, 60, 1n, 4), 64, BigInt(5 * CS)), 5 * CS + 36, 1n << 30n, 4);
    await expectImageError(withSnap, "ERR_CORRUPT_IMAGE", /extra data/);
  });
});
