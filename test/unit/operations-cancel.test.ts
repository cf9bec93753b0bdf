/**
 * The library operations as a user calls them: progress from 0 to the total, monotonic, and an
 * AbortSignal that stops convert, commit, rebase and compare at a consistent point — the
 * promise rejects with the signal's reason (a DOMException named AbortError by default) and the
 * images it wrote open and check clean afterwards.
 */
import { describe, expect, it } from "vitest";
import {
  MemoryBackend,
  commitImage,
  compareImages,
  convertImage,
  createImage,
  imageInfo,
  mapImage,
  openImage,
  rebaseImage,
  type BlockDevice,
  type Progress,
} from "../../src/index.js";
import { pattern } from "../helpers/random.js";
import { keepOpen as view } from "../helpers/memory.js";

const MiB = 1 << 20;

/** Byte equality without vitest's slow element-wise diff of big arrays. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}


/** A raw source of `size` bytes holding a pattern in every other MiB. */
async function patternedRaw(size: number): Promise<BlockDevice> {
  const bytes = new Uint8Array(size);
  for (let off = 0; off < size; off += 2 * MiB) bytes.set(pattern(Math.min(MiB, size - off), off / MiB), off);
  return openImage(new MemoryBackend(bytes), { format: "raw" });
}

/** Progress values were monotonic, started at 0 and (when `complete`) ended at the total. */
function expectProgress(seen: Progress[], total: number, complete: boolean): void {
  expect(seen.length).toBeGreaterThan(1);
  expect(seen[0]).toEqual({ done: 0, total });
  for (let i = 1; i < seen.length; i++) expect(seen[i].done).toBeGreaterThan(seen[i - 1].done);
  for (const p of seen) expect(p.total).toBe(total);
  if (complete) expect(seen[seen.length - 1].done).toBe(total);
  else expect(seen[seen.length - 1].done).toBeLessThan(total);
}

/** Reopens the bytes of `mem` and checks them. */
async function reopenedCheck(mem: MemoryBackend, format: string): Promise<{ corruptions: number; leaks: number }> {
  const img = await openImage(new MemoryBackend(mem.bytes().slice()), { format, readOnly: true, noBacking: true });
  try {
    return await img.check();
  } finally {
    await img.close();
  }
}

describe("convertImage", () => {
  it("reports progress from 0 to the size and copies every byte", async () => {
    const src = await patternedRaw(16 * MiB);
    const mem = new MemoryBackend();
    const dst = await createImage(mem, { format: "qcow2", size: src.size });
    const seen: Progress[] = [];
    await convertImage(src, dst, { chunkSize: MiB, onProgress: (p) => seen.push(p) });
    expectProgress(seen, 16 * MiB, true);
    expect((await compareImages(src, dst)).kind).toBe("identical");
    await dst.close();
  });

  it("rejects with AbortError half-way; the partial target opens and checks clean", async () => {
    for (const format of ["qcow2", "vhdx", "vmdk", "vpc"]) {
      const src = await patternedRaw(32 * MiB);
      const mem = new MemoryBackend();
      const dst = await createImage(mem, { format, size: src.size });
      const ac = new AbortController();
      const seen: Progress[] = [];
      const run = convertImage(src, dst, {
        chunkSize: MiB,
        signal: ac.signal,
        onProgress: (p) => {
          seen.push(p);
          if (p.done >= 8 * MiB) ac.abort();
        },
      });
      const err = await run.then(() => undefined, (e: unknown) => e);
      expect(err, format).toBeInstanceOf(DOMException);
      expect((err as DOMException).name).toBe("AbortError");
      expectProgress(seen, 32 * MiB, false);
      expect(seen[seen.length - 1].done, format).toBeLessThan(20 * MiB);
      // What reached the target before the abort is there and the image is consistent.
      expect(sameBytes(await dst.read(0, MiB), pattern(MiB, 0)), format).toBe(true);
      await dst.close();
      expect(await reopenedCheck(mem, format), format).toMatchObject({ corruptions: 0 });
    }
  });

  it("rejects with the caller's own reason, and at once for a signal aborted before the call", async () => {
    const src = await patternedRaw(4 * MiB);
    const dst = await createImage(new MemoryBackend(), { format: "qcow2", size: src.size });
    const reason = new Error("stop now");
    await expect(convertImage(src, dst, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    // Nothing was written.
    const m = [];
    for await (const e of mapImage(dst)) m.push(e);
    expect(m).toEqual([expect.objectContaining({ start: 0, length: 4 * MiB, data: false })]);
    await dst.close();
  });

  it("reads the target's capabilities: compress uses the compression unit, refuses where none", async () => {
    const src = await patternedRaw(4 * MiB);
    const mem = new MemoryBackend();
    const dst = await createImage(mem, { format: "qcow2", size: src.size, options: "cluster_size=64k" });
    expect(dst.capabilities).toMatchObject({ compress: true, compressionUnit: 65536, allocationUnit: 65536 });
    await convertImage(src, dst, { compress: true });
    const extents = [];
    for await (const e of dst.extents()) extents.push(e);
    expect(extents.some((e) => e.compressed)).toBe(true);
    expect((await compareImages(src, dst)).kind).toBe("identical");
    await dst.close();
    const vdi = await createImage(new MemoryBackend(), { format: "vdi", size: src.size });
    expect(vdi.capabilities.compress).toBe(false);
    await expect(convertImage(src, vdi, { compress: true })).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE" });
    await vdi.close();
  });
});

/** A qcow2 overlay over a raw base, both in memory, with the opener that finds the base. */
async function overlayOverBase(size: number) {
  const base = new MemoryBackend(new Uint8Array(size).fill(0x11), { name: "base.raw" });
  const files = new Map<string, MemoryBackend>([["base.raw", base]]);
  const top = new MemoryBackend(new Uint8Array(0), { name: "top.qcow2" });
  const opts = { backing: "any" as const, openFile: async (req: { name: string }) => view(files.get(req.name)!) };
  const created = await createImage(view(top), { ...opts, format: "qcow2", size, backingFile: "base.raw", backingFormat: "raw" });
  for (let off = 0; off < size; off += 2 * MiB) await created.write(off, pattern(MiB, off / MiB + 1));
  await created.close();
  return { top, base, files, opts };
}

describe("commitImage and rebaseImage", () => {
  it("commit stops on abort: the base holds a consistent prefix, the image still reads the same", async () => {
    const size = 16 * MiB;
    const { top, base, opts } = await overlayOverBase(size);
    const img = await openImage(view(top), { ...opts, format: "qcow2" });
    const before = await img.read(0, size);
    const ac = new AbortController();
    const seen: Progress[] = [];
    const err = await commitImage(img, {
      chunkSize: MiB,
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p);
        if (p.done >= 4 * MiB) ac.abort();
      },
      openWritable: async () => openImage(view(base), { format: "raw" }),
    }).then(() => undefined, (e: unknown) => e);
    expect((err as DOMException).name).toBe("AbortError");
    expectProgress(seen, size, false);
    // Not emptied: the image reads as before.
    expect(Buffer.from(await img.read(0, size)).equals(Buffer.from(before))).toBe(true);
    expect((await img.check()).corruptions).toBe(0);
    await img.close();
    // The base got the first committed MiB.
    expect(sameBytes(base.bytes().subarray(0, MiB), pattern(MiB, 1))).toBe(true);
  });

  it("rebase onto no backing file stops on abort and leaves the backing reference", async () => {
    const size = 16 * MiB;
    const { top, opts } = await overlayOverBase(size);
    const img = await openImage(view(top), { ...opts, format: "qcow2" });
    const before = await img.read(0, size);
    const ac = new AbortController();
    const err = await rebaseImage(img, undefined, {
      chunkSize: MiB,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.done >= 3 * MiB) ac.abort();
      },
    }).then(() => undefined, (e: unknown) => e);
    expect((err as DOMException).name).toBe("AbortError");
    expect(img.backingFile).toEqual({ name: "base.raw", format: "raw" });
    expect(Buffer.from(await img.read(0, size)).equals(Buffer.from(before))).toBe(true);
    await img.close();
    expect(await reopenedCheck(top, "qcow2")).toMatchObject({ corruptions: 0 });
    // Run to the end: the image no longer needs its base and reads the same.
    const again = await openImage(view(top), { ...opts, format: "qcow2" });
    const seen: Progress[] = [];
    await rebaseImage(again, undefined, { onProgress: (p) => seen.push(p) });
    expectProgress(seen, size, true);
    await again.close();
    const alone = await openImage(new MemoryBackend(top.bytes().slice()), { format: "qcow2", readOnly: true });
    expect(alone.backingFile).toBeUndefined();
    expect(Buffer.from(await alone.read(0, size)).equals(Buffer.from(before))).toBe(true);
    await alone.close();
  });
});

describe("compareImages, mapImage and imageInfo", () => {
  it("compare aborts with AbortError and reports monotonic progress", async () => {
    const a = await patternedRaw(16 * MiB);
    const b = await patternedRaw(16 * MiB);
    const ac = new AbortController();
    const seen: Progress[] = [];
    const err = await compareImages(a, b, {
      chunkSize: MiB,
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p);
        if (p.done >= 4 * MiB) ac.abort();
      },
    }).then(() => undefined, (e: unknown) => e);
    expect((err as DOMException).name).toBe("AbortError");
    expectProgress(seen, 16 * MiB, false);
  });

  it("imageInfo gives qemu-img's JSON fields with backing-image for an opened chain", async () => {
    const { top, opts } = await overlayOverBase(4 * MiB);
    const img = await openImage(view(top), { ...opts, format: "qcow2", readOnly: true });
    const info = await imageInfo(img, { filename: "top.qcow2" });
    expect(info).toMatchObject({
      filename: "top.qcow2",
      format: "qcow2",
      "virtual-size": 4 * MiB,
      "cluster-size": 65536,
      "backing-filename": "base.raw",
      "backing-filename-format": "raw",
      "backing-image": { format: "raw", "virtual-size": 4 * MiB, filename: "base.raw" },
    });
    await img.close();
  });
});
