/**
 * The format-neutral operations on in-memory raw images, and the number formatting that must
 * match C's printf (reference values printed by glibc's printf).
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage } from "../../src/index.js";
import { tsKernel } from "../../src/kernel/index.js";
import { compareImages, firstDifference } from "../../src/ops/compare.js";
import { convertImage } from "../../src/ops/convert.js";
import { formatF, formatG, sizeToStr } from "../../src/ops/number-format.js";
import { runIoCommand } from "../../src/ops/io-commands.js";

const MiB = 1 << 20;

async function rawWith(size: number, fill: (b: Uint8Array) => void) {
  const bytes = new Uint8Array(size);
  fill(bytes);
  const mem = new MemoryBackend(bytes);
  return createImageFrom(mem);
}

/** Byte equality without vitest's slow element-wise diff of big arrays. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

async function createImageFrom(mem: MemoryBackend) {
  const { openImage } = await import("../../src/index.js");
  return openImage(mem, { format: "raw" });
}

describe("printf-compatible formatting", () => {
  it("formatG gives glibc's %.Ng, ties to even", () => {
    // Expected strings printed by glibc printf("%.*g").
    const cases: Array<[number, number, string]> = [
      [12.25, 3, "12.2"], [1.125, 3, "1.12"], [1.135, 3, "1.14"], [0.977, 3, "0.977"], [1000, 3, "1e+03"],
      [999.5, 3, "1e+03"], [0.0001234, 3, "0.000123"], [0.00001234, 3, "1.23e-05"], [452, 3, "452"],
      [2.5, 1, "2"], [3.5, 1, "4"], [0.125, 2, "0.12"], [1234567, 6, "1.23457e+06"],
    ];
    for (const [x, p, want] of cases) expect(formatG(x, p)).toBe(want);
  });

  it("formatF gives glibc's %.Nf, ties to even", () => {
    const cases: Array<[number, number, string]> = [
      [0.125, 2, "0.12"], [0.135, 2, "0.14"], [1.25, 1, "1.2"], [2.5, 0, "2"], [3.5, 0, "4"],
      [0.29296875, 2, "0.29"], [12.345, 2, "12.35"], [100, 2, "100.00"], [0.005, 2, "0.01"],
    ];
    for (const [x, d, want] of cases) expect(formatF(x, d)).toBe(want);
  });

  it("sizeToStr matches qemu-img's virtual/disk size strings", () => {
    // As printed by qemu-img info for files of these sizes.
    expect(sizeToStr(0)).toBe("0 B");
    expect(sizeToStr(1024)).toBe("1 KiB");
    expect(sizeToStr(1536)).toBe("1.5 KiB");
    expect(sizeToStr(462848)).toBe("452 KiB");
    expect(sizeToStr(67108864)).toBe("64 MiB");
    expect(sizeToStr(1049600)).toBe("1 MiB");
    expect(sizeToStr(107374182400)).toBe("100 GiB");
  });
});

describe("convertImage()", () => {
  it("copies data, skips zero granules on a zero target, zeroes them on a dirty one", async () => {
    const src = await rawWith(4 * MiB, (b) => {
      b.fill(7, 0, 10000);
      b.fill(9, 3 * MiB + 5, 3 * MiB + 70000);
    });
    const target = await createImage(new MemoryBackend(), { format: "raw", size: 4 * MiB });
    const stats = await convertImage(src, target, { kernel: tsKernel, targetIsZero: true, chunkSize: MiB, alignment: 512 });
    expect(sameBytes(await target.read(0, 4 * MiB), await src.read(0, 4 * MiB))).toBe(true);
    // 10000 bytes → 3 granules of 4 KiB; the second run spans granules 768..785 (18 granules).
    expect(stats.dataBytes).toBe(3 * 4096 + 18 * 4096);
    expect(stats.dataBytes + stats.skippedBytes).toBe(4 * MiB);

    const dirtyMem = new MemoryBackend(new Uint8Array(4 * MiB).fill(0xee));
    const dirty = await createImageFrom(dirtyMem);
    const s2 = await convertImage(src, dirty, { kernel: tsKernel, targetIsZero: false, parallel: 3, inOrder: false, chunkSize: MiB, alignment: 512 });
    expect(sameBytes(await dirty.read(0, 4 * MiB), await src.read(0, 4 * MiB))).toBe(true);
    expect(s2.zeroedBytes).toBe(4 * MiB - s2.dataBytes);
  });

  it("in order, writes reach the target in guest order even when reads finish out of order", async () => {
    const src = await rawWith(4 * MiB, (b) => {
      for (let i = 0; i < 16; i++) b.fill(i + 1, i * 256 * 1024 + 4096, i * 256 * 1024 + 65536);
    });
    // Later requests finish first.
    const realRead = src.readInto.bind(src);
    src.readInto = async (offset: number, into: Uint8Array) => {
      await new Promise((r) => setTimeout(r, 20 - ((offset / (256 * 1024)) % 4) * 5));
      return realRead(offset, into);
    };
    const target = await createImage(new MemoryBackend(), { format: "raw", size: 4 * MiB });
    const calls: number[] = [];
    const realWrite = target.write.bind(target);
    target.write = (offset: number, data: Uint8Array) => {
      calls.push(offset);
      return realWrite(offset, data);
    };
    await convertImage(src, target, { kernel: tsKernel, targetIsZero: true, chunkSize: 256 * 1024, alignment: 512, inOrder: true, parallel: 4 });
    expect(calls).toHaveLength(16);
    expect(calls).toEqual([...calls].sort((x, y) => x - y));
    expect(sameBytes(await target.read(0, 4 * MiB), await src.read(0, 4 * MiB))).toBe(true);
  });

  it("-S 0 writes every byte; a smaller target is refused", async () => {
    const src = await rawWith(MiB, (b) => b.fill(1, 100, 200));
    const target = await createImage(new MemoryBackend(), { format: "raw", size: MiB });
    const s = await convertImage(src, target, { kernel: tsKernel, sparseSize: 0, targetIsZero: true });
    expect(s.dataBytes).toBe(MiB);
    const small = await createImage(new MemoryBackend(), { format: "raw", size: 4096 });
    await expect(convertImage(src, small)).rejects.toBeInstanceOf(RangeError);
  });

  it("reports progress up to the full size", async () => {
    const src = await rawWith(2 * MiB, (b) => b.fill(3));
    const target = await createImage(new MemoryBackend(), { format: "raw", size: 2 * MiB });
    const seen: number[] = [];
    await convertImage(src, target, { kernel: tsKernel, chunkSize: 256 * 1024, onProgress: ({ done, total }) => seen.push(done / total) });
    expect(seen[0]).toBe(0);
    expect(seen[seen.length - 1]).toBe(1);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
  });
});

describe("compareImages()", () => {
  it("finds the first differing sector; a longer image must be zero past the shorter", async () => {
    const a = await rawWith(MiB, (b) => b.fill(5, 0, 5000));
    const b = await rawWith(MiB, (x) => {
      x.fill(5, 0, 5000);
      x[70000] = 1;
    });
    expect(await compareImages(a, b, { kernel: tsKernel })).toEqual({ kind: "content-mismatch", offset: 69632, sizeMismatch: false });
    const longer = await rawWith(2 * MiB, (x) => x.fill(5, 0, 5000));
    expect(await compareImages(a, longer)).toEqual({ kind: "identical", sizeMismatch: true });
    expect(await compareImages(a, longer, { strict: true })).toEqual({ kind: "size-mismatch" });
    const dirtyTail = await rawWith(2 * MiB, (x) => {
      x.fill(5, 0, 5000);
      x[MiB + 1000] = 9;
    });
    expect(await compareImages(dirtyTail, a)).toEqual({ kind: "content-mismatch", offset: MiB + 512, sizeMismatch: true });
  });

  it("firstDifference() handles unaligned views and tails", () => {
    const x = new Uint8Array(1001).fill(1);
    const y = new Uint8Array(1001).fill(1);
    y[999] = 2;
    expect(firstDifference(x.subarray(1), y.subarray(1), 1000)).toBe(998);
    expect(firstDifference(x, y, 999)).toBe(999);
  });
});

describe("runIoCommand()", () => {
  it("write -P then read -P; a mismatch fails with qemu-io's message", async () => {
    const dev = await rawWith(MiB, () => {});
    const out: string[] = [];
    const sink = { out: (l: string) => out.push(l), err: (l: string) => out.push(`E:${l}`) };
    expect(await runIoCommand(dev, "write -P 0x41 512 1k", sink)).toBe(true);
    expect(out[0]).toBe("wrote 1024/1024 bytes at offset 512");
    expect(out[1]).toMatch(/^1 KiB, 1 ops; \d\d\.\d\d sec \([0-9.]+ (bytes|KiB|MiB|GiB)\/sec and [0-9.]+ ops\/sec\)$/);
    expect(await runIoCommand(dev, "read -P 65 512 1024", sink)).toBe(true);
    expect(await runIoCommand(dev, "read -P 0x41 0 1024", sink)).toBe(false);
    expect(out).toContain("Pattern verification failed at offset 0, 1024 bytes");
    expect(await runIoCommand(dev, "read 0 2M", sink)).toBe(false);
    // qemu-io prints transfer failures on stdout, as the result they are.
    expect(out[out.length - 1]).toBe("read failed: Input/output error");
  });
});
