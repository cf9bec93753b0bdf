/**
 * The conformance suite: every driver of the registry that can create images goes through the
 * same random model workload — unaligned writes, zero writes (with and without unmap), discards,
 * flushes, reopen, check, resize where its capabilities say so — and must read back exactly what
 * the model holds. Discard is only a hint, so after a discard each byte may read either its old
 * value or zero (never anything else), and the model learns which. Per-format test files keep
 * only what is specific to a format.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, builtinDrivers, createImage, openImage, type BlockDevice } from "../../src/index.js";
import { randInt, rng } from "../formats/image-model.js";
import { pattern } from "../helpers/random.js";
import { keepOpen as keep } from "../helpers/memory.js";

const KiB = 1024;
const MiB = 1 << 20;


/** First index where `got` differs from `model`, -1 when equal. */
function firstDiff(got: Uint8Array, model: Uint8Array): number {
  const n = Math.min(got.length, model.length);
  if (Buffer.from(got.buffer, got.byteOffset, n).equals(Buffer.from(model.buffer, model.byteOffset, n))) {
    return got.length === model.length ? -1 : n;
  }
  for (let i = 0; i < n; i++) if (got[i] !== model[i]) return i;
  return n;
}

async function expectModel(img: BlockDevice, model: Uint8Array, what: string): Promise<void> {
  const at = firstDiff(await img.read(0, img.size), model);
  expect(at, `${what}: first differing byte at ${at}`).toBe(-1);
  // Extents tile the disk and never call data zero.
  let pos = 0;
  for await (const e of img.extents()) {
    expect(e.offset, what).toBe(pos);
    if (e.zero) expect(model.subarray(e.offset, e.offset + e.length).every((b) => b === 0), `${what}: extent ${e.offset} is not zero`).toBe(true);
    pos += e.length;
  }
  expect(pos, what).toBe(img.size);
}

/** Random operations on `img` and `model` together. */
async function workload(img: BlockDevice, model: Uint8Array, seed: number, ops: number): Promise<void> {
  const r = rng(seed);
  const caps = img.capabilities;
  for (let i = 0; i < ops; i++) {
    const len = 1 + randInt(r, 96 * KiB);
    const off = randInt(r, Math.max(1, img.size - len));
    const n = Math.min(len, img.size - off);
    const roll = r();
    if (roll < 0.15) {
      await img.writeZeroes(off, n, { unmap: r() < 0.5 });
      model.fill(0, off, off + n);
    } else if (roll < 0.25 && caps.discard) {
      const before = model.slice(off, off + n);
      await img.discard(off, n);
      const now = await img.read(off, n);
      for (let k = 0; k < n; k++) {
        if (now[k] !== before[k] && now[k] !== 0) throw new Error(`discard at ${off}+${n} left byte ${off + k} = ${now[k]}, neither its data nor zero`);
      }
      model.set(now, off);
    } else {
      const data = pattern(n, seed * 1000 + i);
      await img.write(off, data);
      model.set(data, off);
    }
    if (r() < 0.08) await img.flush();
  }
}

/** Drivers with `create`, raw included: all of them must pass. */
const writable = builtinDrivers.filter((d) => typeof d.create === "function").map((d) => d.name);

describe("every writable driver of the registry", () => {
  it("the registry has the writable formats the README lists", () => {
    expect(writable.sort()).toEqual(["fvd", "gow1", "gow2", "parallels", "qcow", "qcow2", "qed", "raw", "vdi", "vhdx", "vmdk", "vpc"]);
  });

  for (const format of writable) {
    it(`${format}: random writes, zeroes and discards read back; reopen, check and resize keep them`, async () => {
      const mem = new MemoryBackend(new Uint8Array(0), { name: `conformance.${format}` });
      // Not a multiple of any cluster: the last unit is short.
      const img = await createImage(keep(mem), { format, size: 6 * MiB + 3 * 512 });
      const size = img.size;
      const model = new Uint8Array(size);
      expect(img.capabilities.write, format).toBe(true);
      await workload(img, model, 7, 120);
      await expectModel(img, model, `${format} before reopen`);
      await img.close();

      const again = await openImage(keep(mem), { format });
      await expectModel(again, model, `${format} after reopen`);
      if (again.capabilities.check) expect((await again.check()).corruptions, `${format} check`).toBe(0);
      await workload(again, model, 8, 60);
      let final = model;
      if (again.capabilities.resize && again.resize) {
        const grown = size + 2 * MiB;
        await again.resize(grown);
        expect(again.size, `${format} grown size`).toBeGreaterThanOrEqual(grown);
        final = new Uint8Array(again.size);
        final.set(model);
        await again.write(again.size - 4096, pattern(4096, 99));
        final.set(pattern(4096, 99), again.size - 4096);
        await expectModel(again, final, `${format} after grow`);
      }
      await again.close();

      const last = await openImage(new MemoryBackend(mem.bytes().slice(), { readOnly: true }), { format, readOnly: true });
      await expectModel(last, final, `${format} read-only reopen`);
      if (last.capabilities.check) expect((await last.check()).corruptions, `${format} final check`).toBe(0);
      expect(last.capabilities.write).toBe(false);
      await last.close();
    });
  }
});
