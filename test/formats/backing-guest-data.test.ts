/**
 * What the guest of an overlay reads after operations that release or add space, for every
 * driver that records a backing file (the qemu guarantees behind qemu-iotests 290 and 292):
 * - a discarded range reads as zeros or keeps the data written there, never the backing file's;
 * - a range cut off by a shrink and grown again, or grown over a longer backing file, reads
 *   as zeros (not the backing file's data, nor what it held before the shrink).
 * The qemu-img/qemu-io cross-checks of the same steps are in test/cli (resize, commit, io).
 */
import { describe, expect, it } from "vitest";
import { builtinDrivers } from "../../src/formats/registry.js";
import { isImageError } from "../../src/errors.js";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import { memoryOpener } from "./image-model.js";

const KiB = 1024;
const SIZE = 4 << 20;
const BACKING_BYTE = 0x11;
const GUEST_BYTE = 0x22;

/** The variants of each format that take a backing file (qcow2 v2 has no zero clusters). */
const VARIANTS: Array<{ format: string; options?: string }> = builtinDrivers
  .filter((d) => d.supportsBacking && d.create && d.name !== "raw")
  .flatMap((d) =>
    d.name === "qcow2"
      ? [{ format: "qcow2" }, { format: "qcow2", options: "compat=0.10" }, { format: "qcow2", options: "extended_l2=on" }]
      : [{ format: d.name }],
  );

/** A base image filled with {@link BACKING_BYTE} (same format: vhdx and vpc need one) and an overlay. */
async function overlay(v: { format: string; options?: string }, size = SIZE): Promise<BlockDevice> {
  const baseMem = new MemoryBackend(new Uint8Array(0), { name: "base.img" });
  const base = await createImage(baseMem, { format: v.format, size: SIZE });
  await base.write(0, new Uint8Array(SIZE).fill(BACKING_BYTE));
  await base.close();
  const opener = memoryOpener({ "base.img": baseMem.bytes() });
  const topMem = new MemoryBackend(new Uint8Array(0), { name: "top.img" });
  const top = await createImage(topMem, {
    format: v.format,
    options: v.options,
    size: size === SIZE ? undefined : size,
    backingFile: "base.img",
    backingFormat: v.format,
    backing: "any",
    openFile: opener,
  });
  await top.close();
  return openImage(new MemoryBackend(topMem.bytes(), { name: "top.img" }), { backing: "any", openFile: opener });
}

/** Offset of the first byte of `[offset, offset+length)` that is not `value`, or -1. */
async function firstNot(img: BlockDevice, offset: number, length: number, value: number): Promise<number> {
  const got = await img.read(offset, length);
  const i = got.findIndex((b) => b !== value);
  return i < 0 ? -1 : offset + i;
}

/** Whether `fn` threw an unsupported-feature (or limit) error: the format cannot do this step. */
async function unsupported(fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    return false;
  } catch (e) {
    if (isImageError(e) && (e.code === "ERR_UNSUPPORTED_FEATURE" || e.code === "ERR_INVALID_OPTION")) return true;
    throw e;
  }
}

describe("an overlay's guest never sees its backing file through released or grown space", () => {
  /** The steps each variant could run (the rest its format refuses). */
  const ran = new Set<string>();
  for (const v of VARIANTS) {
    const label = `${v.format}${v.options ? ` -o ${v.options}` : ""}`;

    it(`${label}: discarded data reads as zeros or as written, never as the backing file`, async () => {
      const img = await overlay(v);
      await img.write(0, new Uint8Array(SIZE).fill(GUEST_BYTE));
      // Partial units at the edges first, then everything (units may be larger than the disk).
      await img.discard(64 * KiB, SIZE - 128 * KiB);
      await img.discard(0, SIZE);
      ran.add(`discard ${label}`);
      const got = await img.read(0, SIZE);
      const leak = got.indexOf(BACKING_BYTE);
      expect(leak, `${label}: byte ${leak} reads the backing file after discard`).toBe(-1);
      expect(got.findIndex((b) => b !== GUEST_BYTE && b !== 0)).toBe(-1);
      await img.close();
    });

    it(`${label}: a range shrunk away and grown back reads zeros`, async () => {
      const img = await overlay(v);
      await img.write(0, new Uint8Array(SIZE).fill(GUEST_BYTE));
      // Inside one cluster, as qemu-iotests 292: the kept cluster holds data past the new end.
      if (await unsupported(() => img.resize!(520 * KiB))) {
        await img.close();
        return;
      }
      ran.add(`shrink ${label}`);
      const shrunk = img.size;
      await img.resize!(SIZE);
      expect(await firstNot(img, 0, 520 * KiB, GUEST_BYTE)).toBe(-1);
      expect(await firstNot(img, shrunk, SIZE - shrunk, 0), `${label}: grown range`).toBe(-1);
      await img.close();
    });

    it(`${label}: growing over a longer backing file reads zeros in the new range`, async () => {
      let img: BlockDevice;
      try {
        img = await overlay(v, 1 << 20);
      } catch (e) {
        // Differencing formats take their size from the parent.
        if (isImageError(e) || e instanceof RangeError) return;
        throw e;
      }
      if (img.size === SIZE) {
        await img.close();
        return;
      }
      const old = img.size;
      if (await unsupported(() => img.resize!(SIZE - 3 * 512))) {
        await img.close();
        return;
      }
      ran.add(`grow ${label}`);
      expect(await firstNot(img, 0, old, BACKING_BYTE)).toBe(-1);
      expect(await firstNot(img, old, img.size - old, 0), `${label}: grown range`).toBe(-1);
      await img.close();
    });
  }

  it("covers every format that can shrink or grow an overlay", () => {
    for (const step of ["shrink qcow2", "shrink qcow2 -o compat=0.10", "shrink qcow2 -o extended_l2=on", "shrink fvd"]) {
      expect(ran.has(step), step).toBe(true);
    }
    for (const step of ["grow qcow2", "grow qcow2 -o compat=0.10", "grow qcow2 -o extended_l2=on", "grow fvd", "grow qed"]) {
      expect(ran.has(step), step).toBe(true);
    }
  });
});
