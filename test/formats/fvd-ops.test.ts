/**
 * FVD life cycle: round trips raw → fvd (plain, compact, small chunks with a tiny journal that
 * recycles, over a base image, with a separate data file) → raw against a model, through a
 * reopen with check clean; resize, flatten, amend, copy-on-read, detect_sparse_hole and the
 * never-executed add_storage_cmd.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import type { IoBackend, OpenFileRequest } from "../../src/io/backend.js";
import { amendImage } from "../../src/ops/amend.js";
import { rebaseImage } from "../../src/ops/rebase.js";
import { diffAt, fillPattern, seeded } from "./gow-fvd-helpers.js";

const KiB = 1024;
const MiB = 1 << 20;

/** Hands out views of shared memory files: closing a view leaves the file open for the next opener. */
function sharedOpener(files: Map<string, MemoryBackend>) {
  return async (req: OpenFileRequest): Promise<IoBackend> => {
    const m = files.get(req.name);
    if (!m) throw new Error(`no file ${req.name}`);
    return view(m);
  };
}

function view(m: MemoryBackend): IoBackend {
  return {
    name: m.name,
    capabilities: m.capabilities,
    read: (o, i) => m.read(o, i),
    write: (o, d) => m.write(o, d),
    flush: () => m.flush(),
    size: () => m.size(),
    truncate: (n) => m.truncate(n),
    close: async () => {},
  };
}

async function randomWrites(img: BlockDevice, model: Uint8Array, seed: number, count: number, maxLen: number): Promise<void> {
  const r = seeded(seed);
  for (let i = 0; i < count; i++) {
    const len = 1 + Math.floor(r() * maxLen);
    const off = Math.floor(r() * (img.size - len));
    if (r() < 0.2) {
      await img.writeZeroes(off, len);
      model.fill(0, off, off + len);
    } else {
      const d = fillPattern(len, seed * 1000 + i);
      await img.write(off, d);
      model.set(d, off);
    }
    if (r() < 0.1) await img.flush();
  }
}

interface Case {
  label: string;
  options: string;
  base?: boolean;
  dataFile?: boolean;
}

const SIZE = 3 * MiB + 512 * 7;
const cases: Case[] = [
  { label: "plain", options: "" },
  { label: "compact", options: "compact_image=on,storage_grow_unit=1M" },
  { label: "compact, 4 KiB chunks, 8 KiB journal", options: "compact_image=on,chunk_size=4k,storage_grow_unit=64k,journal_size=8k" },
  { label: "over a base", options: "journal_size=16k", base: true },
  { label: "compact over a base, 64 KiB chunks", options: "compact_image=on,chunk_size=64k,storage_grow_unit=256k,journal_size=64k", base: true },
  { label: "separate data file", options: "compact_image=on,chunk_size=64k,storage_grow_unit=64k,data_file=t.data", dataFile: true },
];

describe("fvd round trips", () => {
  for (const c of cases) {
    it(`raw → fvd (${c.label}) → raw with writes in between, check clean`, { timeout: 30000 }, async () => {
      const files = new Map<string, MemoryBackend>();
      const opener = sharedOpener(files);
      const baseData = fillPattern(2 * MiB + 1536, 99);
      baseData.fill(0, 256 * KiB, 512 * KiB);
      if (c.base) files.set("base.raw", new MemoryBackend(baseData, { name: "base.raw" }));
      if (c.dataFile) files.set("t.data", new MemoryBackend(new Uint8Array(0), { name: "t.data" }));
      const mem = new MemoryBackend(new Uint8Array(0), { name: "t.fvd" });
      const img = await createImage(mem, {
        format: "fvd",
        size: SIZE,
        options: c.options,
        backingFile: c.base ? "base.raw" : undefined,
        backingFormat: c.base ? "raw" : undefined,
        backing: "same-dir",
        openFile: opener,
      });
      const model = new Uint8Array(SIZE);
      if (c.base) model.set(baseData);
      expect(diffAt(await img.read(0, SIZE), model)).toBe(-1);
      // Copy a raw disk in (the convert direction), then random guest writes.
      const raw = fillPattern(SIZE, 5);
      raw.fill(0, MiB, MiB + 300 * KiB);
      await img.write(0, raw.subarray(0, MiB));
      model.set(raw.subarray(0, MiB));
      await randomWrites(img, model, c.label.length, 80, 200 * KiB);
      expect(diffAt(await img.read(0, SIZE), model), "before close").toBe(-1);
      expect(await img.check()).toMatchObject({ corruptions: 0, leaks: 0 });
      await img.close();
      const bytes = mem.bytes().slice();
      expect(new DataView(bytes.buffer).getUint32(0x10cc, true)).toBe(1); // clean_shutdown
      const ro = await openImage(new MemoryBackend(bytes.slice()), { format: "fvd", readOnly: true, backing: "same-dir", openFile: opener });
      expect(diffAt(await ro.read(0, SIZE), model), "after reopen").toBe(-1);
      expect(await ro.check()).toMatchObject({ corruptions: 0, leaks: 0 });
      await ro.close();
      const probed = await openImage(new MemoryBackend(bytes.slice()), { readOnly: true, backing: "same-dir", openFile: opener });
      expect(probed.format).toBe("fvd");
      await probed.close();
    });
  }
});

describe("fvd resize", () => {
  it("grows a compact image inside its table region, then by relocating the journal, and refuses past the room", async () => {
    const mem = new MemoryBackend();
    // 1 MiB at 4 KiB chunks: 256 entries in a 4096-byte table; journal 16 KiB behind it.
    const img = await createImage(mem, { format: "fvd", size: MiB, options: "compact_image=on,chunk_size=4k,journal_size=24k,storage_grow_unit=4k" });
    const model = new Uint8Array(4 * MiB);
    await randomWrites(img, model.subarray(0, MiB), 1, 20, 20000);
    await img.resize!(4 * MiB); // 1024 entries: exactly one 4096-byte table
    expect(img.size).toBe(4 * MiB);
    await img.write(3 * MiB + 5, fillPattern(9000, 3));
    model.set(fillPattern(9000, 3), 3 * MiB + 5);
    await img.resize!(12 * MiB); // 3072 entries: 12 KiB table, journal 24 KiB -> 16 KiB (its minimum: 26 sectors, rounded)
    const v = new DataView(mem.bytes().buffer, mem.bytes().byteOffset);
    expect(v.getUint32(0x10bc, true)).toBe(8192 + 12288);
    expect(v.getUint32(0x10c4, true)).toBe(16384);
    await expect(img.resize!(64 * MiB)).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE", message: /journal/ });
    expect(diffAt(await img.read(0, 4 * MiB), model)).toBe(-1);
    expect((await img.read(4 * MiB, 8 * MiB)).every((b) => b === 0)).toBe(true);
    await img.write(11 * MiB, new Uint8Array([1, 2, 3]));
    expect(await img.check()).toMatchObject({ corruptions: 0, leaks: 0 });
    await img.close();
    const again = await openImage(new MemoryBackend(mem.bytes().slice()), { format: "fvd", readOnly: true });
    expect(again.size).toBe(12 * MiB);
    expect(diffAt(await again.read(0, 4 * MiB), model)).toBe(-1);
    expect(Array.from(await again.read(11 * MiB, 3))).toEqual([1, 2, 3]);
  });

  it("chunks freed by a shrink are reused without their old data", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(view(mem), { format: "fvd", size: MiB, options: "compact_image=on,chunk_size=64k,storage_grow_unit=64k" });
    await img.write(0, new Uint8Array(64 * KiB).fill(1)); // physical 0
    await img.write(512 * KiB, new Uint8Array(64 * KiB).fill(2)); // physical 1
    await img.resize!(256 * KiB); // drops chunk 8 (physical 1)
    await img.close();
    const again = await openImage(view(mem), { format: "fvd" });
    await again.resize!(MiB);
    await again.write(768 * KiB, new Uint8Array([3])); // the next open hands out physical 1 again
    const back = await again.read(768 * KiB, 64 * KiB);
    expect(back[0]).toBe(3);
    expect(back.subarray(1).every((b) => b === 0)).toBe(true);
    expect((await again.read(512 * KiB, 64 * KiB)).every((b) => b === 0)).toBe(true);
    expect(await again.check()).toMatchObject({ corruptions: 0, leaks: 0 });
    await again.close();
  });

  it("shrink then grow reads zeros in the regrown part (plain and compact)", async () => {
    for (const options of ["", "compact_image=on,chunk_size=64k,storage_grow_unit=64k"]) {
      const mem = new MemoryBackend();
      const img = await createImage(mem, { format: "fvd", size: 2 * MiB, options });
      await img.write(0, fillPattern(2 * MiB, 8));
      await img.resize!(MiB + 4096);
      await img.resize!(2 * MiB);
      const back = await img.read(0, 2 * MiB);
      expect(diffAt(back.subarray(0, MiB + 4096), fillPattern(2 * MiB, 8).subarray(0, MiB + 4096))).toBe(-1);
      expect(back.subarray(MiB + 4096).every((b) => b === 0), options).toBe(true);
      const c = await img.check();
      expect(c.corruptions).toBe(0);
      await img.close();
    }
  });
});

describe("fvd base-image operations", () => {
  async function overBase(options: string, extra: Record<string, string> = {}) {
    const files = new Map<string, MemoryBackend>();
    const baseData = fillPattern(MiB, 4);
    baseData.fill(0, 0, 128 * KiB);
    files.set("base.raw", new MemoryBackend(baseData, { name: "base.raw" }));
    const mem = new MemoryBackend(new Uint8Array(0), { name: "t.fvd" });
    const opener = sharedOpener(files);
    const img = await createImage(view(mem), {
      format: "fvd",
      size: 2 * MiB,
      options,
      backingFile: "base.raw",
      backingFormat: "raw",
      backing: "same-dir",
      openFile: opener,
    });
    await img.close();
    const reopen = (o: { readOnly?: boolean; noBacking?: boolean; driverOptions?: Record<string, string> } = {}) =>
      openImage(view(mem), { format: "fvd", backing: "same-dir", openFile: opener, driverOptions: extra, ...o });
    return { mem, baseData, reopen, files };
  }

  it("flatten pulls every block from the base and sets all_data_in_fvd_img", async () => {
    for (const options of ["journal_size=8k", "compact_image=on,chunk_size=64k,storage_grow_unit=128k,journal_size=8k"]) {
      const { mem, baseData, reopen } = await overBase(options);
      const img = await reopen();
      await img.write(300 * KiB, new Uint8Array(1000).fill(0xee));
      const expected = new Uint8Array(2 * MiB);
      expected.set(baseData);
      expected.fill(0xee, 300 * KiB, 300 * KiB + 1000);
      let last = { done: 0, total: -1 };
      await rebaseImage(img, undefined, { onProgress: (p) => (last = p) });
      expect(last).toEqual({ done: 2 * MiB, total: 2 * MiB });
      expect(diffAt(await img.read(0, 2 * MiB), expected)).toBe(-1);
      await img.close();
      const v = new DataView(mem.bytes().buffer, mem.bytes().byteOffset);
      expect(v.getUint32(8, true), options).toBe(1);
      // No longer needs the base: opens and reads the same with backing files denied.
      const alone = await openImage(new MemoryBackend(mem.bytes().slice()), { format: "fvd", readOnly: true });
      expect(alone.backing).toBeUndefined();
      expect(diffAt(await alone.read(0, 2 * MiB), expected), options).toBe(-1);
      expect((await alone.check()).corruptions).toBe(0);
      if (options.includes("compact")) {
        // The zero head of the base was marked, not written: 128 KiB of chunks never allocated.
        const info = await alone.info();
        const derived = info.formatSpecific!.data.derived as Record<string, number>;
        expect(derived["used-chunks"]).toBe(14);
      }
    }
  });

  it("copy-on-read (open option) copies what reads pull from the base", async () => {
    const { mem, baseData, reopen } = await overBase("journal_size=8k", { "copy-on-read": "on" });
    const img = await reopen();
    expect(diffAt(await img.read(200 * KiB, 100 * KiB), baseData.subarray(200 * KiB, 300 * KiB))).toBe(-1);
    await img.close();
    const alone = await openImage(new MemoryBackend(mem.bytes().slice()), { format: "fvd", readOnly: true, noBacking: true });
    const got = await alone.read(0, MiB);
    expect(diffAt(got.subarray(200 * KiB, 300 * KiB), baseData.subarray(200 * KiB, 300 * KiB))).toBe(-1);
    expect(got.subarray(400 * KiB).every((b) => b === 0)).toBe(true); // never read: still in the base
    // Without the option nothing is copied.
    const plain = await reopen({ driverOptions: {} });
    await plain.read(500 * KiB, 10 * KiB);
    await plain.close();
    const alone2 = await openImage(new MemoryBackend(mem.bytes().slice()), { format: "fvd", readOnly: true, noBacking: true });
    expect((await alone2.read(500 * KiB, 10 * KiB)).every((b) => b === 0)).toBe(true);
  });

  it("detect_sparse_hole marks the base's zero units as local at create", async () => {
    const { reopen } = await overBase("detect_sparse_hole=64k");
    const img = await reopen({ readOnly: true });
    const ext = [];
    for await (const e of img.extents(0, MiB)) ext.push([e.offset, e.length, e.depth]);
    expect(ext[0]).toEqual([0, 128 * KiB, 0]);
    expect(ext[1]).toEqual([128 * KiB, MiB - 128 * KiB, 1]);
    const info = await img.info();
    expect(info.formatSpecific!.data.need_zero_init).toBe(1);
    await img.close();
    const files = new Map<string, MemoryBackend>();
    await expect(
      createImage(new MemoryBackend(), { format: "fvd", size: MiB, options: "detect_sparse_hole=64k,compact_image=on", backingFile: "b", backingFormat: "raw", backing: "any", openFile: async () => new MemoryBackend(new Uint8Array(MiB)) }),
    ).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    void files;
  });
});

describe("fvd header operations", () => {
  it("amend edits qemu-img update's attributes and refuses unknown ones", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "fvd", size: MiB, options: "compact_image=on,storage_grow_unit=1M" });
    await amendImage(img, "copy_on_read=on,prefetch_start_delay=30,max_num_outstanding_prefetch_writes=4,prefetch_over_threshold_throttle_time=5,base_img=other.raw,size=2M");
    await expect(amendImage(img, "bogus=1")).rejects.toMatchObject({ code: "ERR_INVALID_OPTION", message: /unknown attribute 'bogus'/ });
    await expect(amendImage(img, [["bytes_per_prefetch", "100"]])).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    expect(img.size).toBe(2 * MiB);
    await img.close();
    const v = new DataView(mem.bytes().buffer, mem.bytes().byteOffset);
    expect(v.getUint32(0x448, true)).toBe(1);
    expect(v.getInt32(0x864, true)).toBe(30);
    expect(v.getUint32(0x878, true)).toBe(4);
    expect(v.getUint32(0x89c, true)).toBe(5);
    expect(v.getUint32(0x0c, true)).toBe(2 * MiB);
    expect(new TextDecoder().decode(mem.bytes().subarray(0x1c, 0x1c + 9))).toBe("other.raw");
    expect(mem.bytes()[0x1c + 9]).toBe(0);
  });

  it("keeps add_storage_cmd, shows it and never runs it", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(view(mem), { format: "fvd", size: MiB, options: "compact_image=on,add_storage_cmd=touch /tmp/vdisk-fvd-pwned,storage_grow_unit=64k" });
    await img.write(0, new Uint8Array(4096).fill(1));
    await img.close();
    const warnings: string[] = [];
    const again = await openImage(view(mem), { format: "fvd", warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/never runs it/);
    const data = (await again.info()).formatSpecific!.data;
    expect(data.add_storage_cmd).toBe("touch /tmp/vdisk-fvd-pwned");
    expect(data["add-storage-cmd-policy"]).toMatch(/never executed/);
    await again.write(512 * KiB, new Uint8Array(4096).fill(2));
    await again.close();
    const fs = await import("node:fs");
    expect(fs.existsSync("/tmp/vdisk-fvd-pwned")).toBe(false);
  });

  it("info shows every header field and the project decisions", async () => {
    const img = await createImage(new MemoryBackend(), { format: "fvd", size: MiB });
    const data = (await img.info()).formatSpecific!.data;
    for (const f of ["magic", "version", "all_data_in_fvd_img", "virtual_disk_size", "metadata_size", "base_img", "base_img_fmt", "base_img_size", "bitmap_offset", "bitmap_size", "block_size", "copy_on_read", "max_outstanding_copy_on_read_data", "data_file", "data_file_fmt", "prefetch_start_delay", "prefetch_profile_offset", "prefetch_profile_entries", "num_prefetch_slots", "bytes_per_prefetch", "prefetch_read_throughput_measure_time", "prefetch_write_throughput_measure_time", "prefetch_perf_calc_alpha", "prefetch_min_read_throughput", "prefetch_min_write_throughput", "prefetch_max_read_throughput", "prefetch_max_write_throughput", "prefetch_throttle_time", "compact_image", "table_offset", "chunk_size", "storage_grow_unit", "add_storage_cmd", "journal_offset", "journal_size", "clean_shutdown", "need_zero_init", "generate_prefetch_profile", "unit_of_PrefetchProfileEntry_len", "profile_directed_prefetch_start_delay", "write_updates_base_img"]) {
      expect(data, f).toHaveProperty(f);
    }
    expect(data.magic).toBe("0x5143f5a9");
    expect((data["project-decisions"] as string[]).join()).toMatch(/add_storage_cmd/);
    await img.close();
  });

  it("an unclean image without a journal opens with a warning and stays marked", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "fvd", size: MiB, options: "compact_image=on,journal_size=0,storage_grow_unit=64k" });
    await img.close();
    // journal_size=0 still gets the default journal (a table exists): zero it by hand.
    const b = mem.bytes();
    const v = new DataView(b.buffer, b.byteOffset);
    v.setUint32(0x10c4, 0, true);
    v.setUint32(0x10cc, 0, true);
    const warnings: string[] = [];
    const dirty = await openImage(new MemoryBackend(b.slice()), { format: "fvd", warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/not shut down cleanly and has no journal/);
    await dirty.write(0, new Uint8Array([1]));
    await dirty.close();
  });
});
