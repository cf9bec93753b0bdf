/**
 * Offsets at or past 2^53 (which a `number` cannot hold exactly) in tables and headers are
 * ImageErrors naming the structure, never Node's own RangeError text from its file read or a
 * bare RangeError from the codec; unneeded VHD parent locators past 2^53 are ignored.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { defineStruct, FieldOverflowError } from "../../src/codec/struct.js";
import { createImage, isImageError, openImage } from "../../src/node.js";
import { vdisk } from "../cli/cli-helpers.js";
import { tempDir } from "../helpers/qemu.js";

const CS = 4096;

function poke(file: string, at: number, bytes: number[]): void {
  const b = readFileSync(file);
  b.set(bytes, at);
  writeFileSync(file, b);
}

/** qcow2, 4 KiB clusters: refcount table 4k, refcount block 8k, L1 12k, L2 16k, data after. */
async function qcow2File(path: string): Promise<void> {
  const img = await createImage(path, { format: "qcow2", size: 4 << 20, options: "cluster_size=4k" });
  await img.write(0, new Uint8Array(2 * CS).fill(0x5a));
  await img.close();
}

const PAST_2_53 = [0x80, 0x20, 0, 0, 0, 0, 0, 0]; // COPIED | 2^53

describe("offsets at or past 2^53", () => {
  it("a qcow2 L2 entry past 2^53 is an ImageError naming the L2 table in read, map and convert", async () => {
    const t = tempDir();
    const f = t.path("l2.qcow2");
    await qcow2File(f);
    poke(f, 4 * CS, PAST_2_53);
    const img = await openImage(f, { readOnly: true });
    const e = await img.read(0, CS).catch((x: unknown) => x);
    await img.close();
    expect(isImageError(e), String(e)).toBe(true);
    expect((e as Error).message).toMatch(/L2 entry 0 .* past 2\^53/);
    for (const args of [["map", f], ["convert", "-O", "raw", f, t.path("out.raw")]]) {
      const r = await vdisk(...args);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).not.toMatch(/position|out of range|RangeError/);
      expect(r.stderr).toMatch(/L2 entry 0/);
    }
    t.cleanup();
  });

  it("a qcow2 L1 entry past 2^53 is an ImageError naming the L1 table", async () => {
    const t = tempDir();
    const f = t.path("l1.qcow2");
    await qcow2File(f);
    poke(f, 3 * CS, PAST_2_53);
    const r = await vdisk("convert", "-O", "raw", f, t.path("out.raw"));
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/position|out of range|RangeError/);
    expect(r.stderr).toMatch(/L1 entry 0/);
    t.cleanup();
  });

  it("a qcow2 refcount table entry past 2^53 is reported by check and refused by a write, in our words", async () => {
    const t = tempDir();
    const f = t.path("rt.qcow2");
    await qcow2File(f);
    poke(f, CS, [0, 0x20, 0, 0, 0, 0, 0, 0]);
    const r = await vdisk("check", f);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/position|out of range|RangeError/);
    expect(r.stdout + r.stderr).toMatch(/refcount/);
    const img = await openImage(f);
    const e = await img.write(3 << 20, new Uint8Array(CS).fill(1)).catch((x: unknown) => x);
    await img.close().catch(() => {});
    expect(isImageError(e), String(e)).toBe(true);
    t.cleanup();
  });

  it("a VHD parent locator whose offset is past 2^53 is ignored when not needed", async () => {
    const t = tempDir();
    const f = t.path("d.vhd");
    const v = await createImage(f, { format: "vpc", size: 4 << 20 });
    await v.write(0, new Uint8Array(512).fill(3));
    await v.close();
    // Locator entry 0 of the dynamic header (at 512): "W2ru", 512 bytes at 2^60.
    poke(f, 512 + 576, [0x57, 0x32, 0x72, 0x75, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    const again = await openImage(f, { readOnly: true });
    expect((await again.read(0, 512))[0]).toBe(3);
    await again.close();
    const r = await vdisk("info", f);
    expect(r.status, r.stderr).toBe(0);
    t.cleanup();
  });

  it("the codec turns a u64 field past 2^53 into an ImageError naming the structure", () => {
    const codec = defineStruct("test header", "be", [{ name: "tableOffset", kind: "u64", at: 0 }]);
    const e = (() => {
      try {
        return codec.decode(Uint8Array.of(0, 0x20, 0, 0, 0, 0, 0, 0));
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(FieldOverflowError);
    expect(isImageError(e)).toBe(true);
    expect((e as FieldOverflowError).code).toBe("ERR_CORRUPT_IMAGE");
    expect((e as FieldOverflowError).structure).toBe("test header");
    expect((e as Error).message).toMatch(/test header field tableOffset = 0x20000000000000 exceeds 2\^53/);
  });
});
