/**
 * VHDX against qemu 7.2: qemu-made images (random create options and data) read byte-identical
 * to `qemu-img convert -O raw`; images vdisk creates and writes pass `qemu-img check` and
 * `qemu-img compare`; vdisk writes into qemu-made images; a log vdisk left behind (crash before
 * the log was marked empty) is replayed by qemu; qemu's vhdx create limits.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { NodeFileBackend, createImage, openImage, parseSize } from "../../src/node.js";
import { HAVE_QEMU, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";
import { firstDiff, pattern, rng } from "../helpers/random.js";

if (!HAVE_QEMU) warnSkipped("vhdx interop tests");

/** libvhdi's Python binding (Debian python3-libvhdi): a second reader, for what qemu cannot open. */
const PYTHON = "/usr/bin/python3";
const HAVE_PYVHDI = spawnSync(PYTHON, ["-c", "import pyvhdi"]).status === 0;
if (!HAVE_PYVHDI) warnSkipped("vhdx cross-checks with libvhdi (4096-byte sectors, differencing)", "python3-libvhdi");

/** Reads the whole virtual disk of `file` with libvhdi (through `parent` for a differencing image). */
function readWithLibvhdi(file: string, out: string, parent?: string): Uint8Array {
  const script = [
    "import sys, pyvhdi",
    "f = pyvhdi.file(); f.open(sys.argv[1])",
    "if len(sys.argv) > 3:",
    "    p = pyvhdi.file(); p.open(sys.argv[3]); f.set_parent(p)",
    "n = f.get_media_size(); o = open(sys.argv[2], 'wb'); pos = 0",
    "while pos < n:",
    "    d = f.read_buffer_at_offset(min(1 << 20, n - pos), pos); o.write(d); pos += len(d)",
    "o.close()",
  ].join("\n");
  const r = spawnSync(PYTHON, ["-c", script, file, out, ...(parent ? [parent] : [])], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`libvhdi could not read ${file}: ${r.stderr}`);
  return new Uint8Array(readFileSync(out));
}

const MiB = 1 << 20;


async function readAll(path: string): Promise<{ data: Uint8Array; dataExtents: Array<[number, number]> }> {
  const img = await openImage(path, { readOnly: true, format: "vhdx" });
  try {
    const dataExtents: Array<[number, number]> = [];
    for await (const e of img.extents()) if (!e.zero) dataExtents.push([e.offset, e.length]);
    return { data: await img.read(0, img.size), dataExtents };
  } finally {
    await img.close();
  }
}

describe.skipIf(!HAVE_QEMU)("vhdx images made by qemu read through vdisk", () => {
  const t = tempDir("vdisk-vhdx-read-");
  afterAll(() => t.cleanup());
  const r = rng(2024);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  for (let n = 0; n < 8; n++) {
    const opts = [
      `subformat=${pick(["dynamic", "fixed"])}`,
      `block_size=${pick(["1M", "2M", "8M", "32M"])}`,
      `block_state_zero=${pick(["on", "off"])}`,
      `log_size=${pick(["1M", "2M"])}`,
    ].join(",");
    const size = (16 + Math.floor(r() * 32)) * MiB + Math.floor(r() * 64) * 512;
    const cmds: string[] = [];
    for (let i = 0; i < 12; i++) {
      const len = 1 + Math.floor(r() * 3 * MiB);
      const off = Math.floor(r() * (size - len));
      cmds.push(r() < 0.2 ? `write -z ${off} ${len}` : `write -P 0x${(0x11 * ((i % 15) + 1)).toString(16)} ${off} ${len}`);
    }
    it(`-o ${opts}, ${size} bytes: reads like qemu-img convert and maps only written blocks as data`, async () => {
      const f = t.path(`q${n}.vhdx`);
      qemuImg("create", "-q", "-f", "vhdx", "-o", opts, f, String(size));
      qemuIo("vhdx", f, cmds);
      qemuImg("convert", "-f", "vhdx", "-O", "raw", f, t.path(`q${n}.raw`));
      const expected = new Uint8Array(readFileSync(t.path(`q${n}.raw`)));
      const { data, dataExtents } = await readAll(f);
      expect(data.length).toBe(expected.length);
      expect(firstDiff(data, expected)).toBe(-1);
      // Every non-zero byte lies inside a data extent (the map tells the truth, it is not all data).
      let covered = 0;
      for (const [off, len] of dataExtents) covered += len;
      const nonZero = expected.some((b) => b !== 0);
      if (nonZero) expect(covered).toBeGreaterThan(0);
      expect(covered).toBeLessThan(size + 1);
      let k = 0;
      for (let i = 0; i < expected.length; i += 4093) {
        if (expected[i] === 0) continue;
        while (k < dataExtents.length && dataExtents[k][0] + dataExtents[k][1] <= i) k++;
        expect(k < dataExtents.length && dataExtents[k][0] <= i, `non-zero byte at ${i} outside the data extents`).toBe(true);
      }
    });
  }
});

describe.skipIf(!HAVE_QEMU)("vhdx images written by vdisk pass qemu-img check and compare", () => {
  const t = tempDir("vdisk-vhdx-write-");
  afterAll(() => t.cleanup());
  const variants = [
    "",
    "block_size=1M",
    "block_size=1M,block_state_zero=off",
    "subformat=fixed,block_size=2M",
    "block_size=1M,logical_sector_size=4096",
    "subformat=fixed,block_size=1M,logical_sector_size=4096,log_size=3M",
    "block_size=32M",
  ];
  variants.forEach((opts, n) => {
    it(`-o '${opts}': qemu-img check is clean and compare finds the written data`, async () => {
      const size = 40 * MiB + 8192;
      const f = t.path(`v${n}.vhdx`);
      const img = await createImage(f, { format: "vhdx", size, options: opts });
      const model = new Uint8Array(size);
      const r = rng(n + 7);
      for (let i = 0; i < 25; i++) {
        const len = 1 + Math.floor(r() * 2 * MiB);
        const off = Math.floor(r() * (size - len));
        if (r() < 0.15) {
          await img.writeZeroes(off, len);
          model.fill(0, off, off + len);
        } else {
          const d = pattern(len, i);
          await img.write(off, d);
          model.set(d, off);
        }
      }
      await img.close();
      if (opts.includes("logical_sector_size=4096")) {
        // qemu 7.2 opens only 512-byte-sector VHDX ("Operation not supported"): libvhdi checks these.
        if (!HAVE_PYVHDI) return;
        expect(firstDiff(readWithLibvhdi(f, t.path(`v${n}.lib.raw`)), model)).toBe(-1);
        return;
      }
      const check = qemuImgStatus("check", "-f", "vhdx", f);
      expect(check.stderr).toBe("");
      expect(check.status).toBe(0);
      const info = JSON.parse(qemuImg("info", "--output=json", "-f", "vhdx", f)) as Record<string, unknown>;
      expect(info["virtual-size"]).toBe(size);
      writeFileSync(t.path(`v${n}.raw`), model);
      const cmp = qemuImgStatus("compare", "-f", "vhdx", "-F", "raw", f, t.path(`v${n}.raw`));
      expect(cmp.stdout).toMatch(/Images are identical/);
      expect(cmp.status).toBe(0);
    });
  });

  it("vdisk writes into a qemu-made image; qemu reads them (regression-vhdx-log: first BAT entry of a sector)", async () => {
    const f = t.path("mixed.vhdx");
    qemuImg("create", "-q", "-f", "vhdx", "-o", "block_size=1M", f, String(64 * MiB));
    qemuIo("vhdx", f, ["write -P 0x5a 10M 3M"]);
    const img = await openImage(f, { format: "vhdx" });
    await img.write(32 * MiB, new Uint8Array(4096).fill(1));
    await img.write(0, new Uint8Array(4096).fill(2));
    await img.write(11 * MiB + 77, new Uint8Array(1000).fill(3));
    await img.close();
    expect(qemuImgStatus("check", "-f", "vhdx", f).status).toBe(0);
    const out = qemuIo("vhdx", f, ["read -P 1 32M 4k", "read -P 2 0 4k", "read -P 0x5a 10M 1M", "read -P 3 11534413 1000", "read -P 0 4k 1M"]);
    expect(out).not.toMatch(/Pattern verification failed/);
  });

  for (const opts of ["block_size=1M", "subformat=fixed,block_size=2M,block_state_zero=off", "subformat=fixed,block_size=1M"]) {
    it(`vdisk resizes a qemu-made image (-o ${opts}); qemu sees the new size and data, check is clean`, async () => {
      const f = t.path(`resize-${opts.replace(/[=,]/g, "_")}.vhdx`);
      qemuImg("create", "-q", "-f", "vhdx", "-o", opts, f, String(20 * MiB + 512));
      qemuIo("vhdx", f, ["write -P 0x61 0 3M", "write -P 0x62 19M 1M"]);
      const img = await openImage(f, { format: "vhdx" });
      await img.resize!(9 * MiB + 4096);
      await img.resize!(33 * MiB);
      await img.write(30 * MiB, new Uint8Array(MiB).fill(0x63));
      await img.close();
      expect(JSON.parse(qemuImg("info", "--output=json", f))["virtual-size"]).toBe(33 * MiB);
      expect(qemuImgStatus("check", "-f", "vhdx", f).status).toBe(0);
      const model = new Uint8Array(33 * MiB);
      model.fill(0x61, 0, 3 * MiB);
      model.fill(0x63, 30 * MiB, 31 * MiB);
      writeFileSync(t.path("resize.raw"), model);
      const cmp = qemuImgStatus("compare", "-f", "vhdx", "-F", "raw", f, t.path("resize.raw"));
      expect(cmp.stdout).toMatch(/Images are identical/);
    });
  }

  it("a log vdisk left dirty (crash after the metadata commit) is replayed by qemu-img check -r all", async () => {
    const f = t.path("dirty.vhdx");
    const img = await createImage(f, { format: "vhdx", size: 8 * MiB, options: "block_size=1M" });
    await img.close();
    // Record the file state after every flush of a write session, then keep the one where
    // the log is written but not yet marked empty.
    const snapshots: Uint8Array[] = [];
    const inner = await NodeFileBackend.open(f);
    const recording = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === "flush") {
          return async () => {
            await target.flush();
            snapshots.push(new Uint8Array(readFileSync(f)));
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const w = await openImage(recording, { format: "vhdx" });
    await w.write(2 * MiB + 512, pattern(MiB, 9));
    await w.close();
    // A snapshot whose current header names a log GUID and whose log holds our entry.
    let found = false;
    for (const snap of snapshots) {
      writeFileSync(t.path("snap.vhdx"), snap);
      const ro = qemuImgStatus("info", "-f", "vhdx", t.path("snap.vhdx"));
      if (!/contains a log that needs to be replayed/.test(ro.stderr)) continue;
      found = true;
      const fix = qemuImgStatus("check", "-r", "all", "-f", "vhdx", t.path("snap.vhdx"));
      expect(fix.status).toBe(0);
      expect(fix.stdout).toMatch(/1 corruptions/);
      const out = qemuIo("vhdx", t.path("snap.vhdx"), ["read -P 0 0 2M"]);
      expect(out).not.toMatch(/verification failed/);
      // After qemu's replay the image reads like ours.
      const ours = await openImage(t.path("snap.vhdx"), { format: "vhdx", readOnly: true });
      qemuImg("convert", "-f", "vhdx", "-O", "raw", t.path("snap.vhdx"), t.path("snap.raw"));
      expect(firstDiff(await ours.read(0, ours.size), new Uint8Array(readFileSync(t.path("snap.raw"))))).toBe(-1);
      await ours.close();
    }
    expect(found, "some snapshot had a dirty log").toBe(true);
  });
});

describe.skipIf(!HAVE_PYVHDI)("vhdx differencing images written by vdisk read the same through libvhdi", () => {
  const t = tempDir("vdisk-vhdx-diff-");
  afterAll(() => t.cleanup());
  for (const lss of [512, 4096]) {
    it(`parent and child with ${lss}-byte sectors: libvhdi reads what vdisk wrote`, async () => {
      const size = 12 * MiB;
      const base = t.path(`base${lss}.vhdx`);
      const child = t.path(`child${lss}.vhdx`);
      const model = new Uint8Array(size);
      const p = await createImage(base, { format: "vhdx", size, options: `block_size=1M,logical_sector_size=${lss}` });
      for (let i = 0; i < 5; i++) {
        const d = pattern(900_000, i + 50);
        await p.write(i * 2_300_000 + 4096, d);
        model.set(d, i * 2_300_000 + 4096);
      }
      await p.close();
      const c = await createImage(child, { format: "vhdx", backingFile: `base${lss}.vhdx`, backing: "same-dir" });
      const r = rng(lss);
      for (let i = 0; i < 20; i++) {
        const len = lss * (1 + Math.floor(r() * 300));
        const off = lss * Math.floor(r() * ((size - len) / lss));
        const d = pattern(len, i + 200);
        await c.write(off, d);
        model.set(d, off);
      }
      await c.close();
      expect(firstDiff(readWithLibvhdi(child, t.path(`child${lss}.raw`), base), model)).toBe(-1);
      // And vdisk reads the same back.
      const again = await openImage(child, { format: "vhdx", readOnly: true, backing: "same-dir" });
      expect(firstDiff(await again.read(0, size), model)).toBe(-1);
      await again.close();
    });
  }
});

describe.skipIf(!HAVE_QEMU)("vhdx create limits match qemu-img", () => {
  const t = tempDir("vdisk-vhdx-create-");
  afterAll(() => t.cleanup());
  for (const [opts, size] of [
    ["block_size=3M", "64M"],
    ["block_size=1234567", "64M"],
    ["log_size=4G", "64M"],
    ["", "64T"],
    ["", String(2 ** 46 + 512)],
    ["", "0"],
  ] as const) {
    it(`'-o ${opts}' size ${size}: vdisk and qemu-img agree on success and block size`, async () => {
      const q = qemuImgStatus("create", "-f", "vhdx", ...(opts ? ["-o", opts] : []), t.path("q.vhdx"), size);
      let vdiskError = "";
      try {
        const img = await createImage(t.path("v.vhdx"), { format: "vhdx", size: parseSize(size), options: opts });
        await img.close();
      } catch (e) {
        vdiskError = (e as Error).message;
      }
      if (q.status === 0) {
        expect(vdiskError).toBe("");
        const qi = JSON.parse(qemuImg("info", "--output=json", t.path("q.vhdx"))) as Record<string, number>;
        const vi = JSON.parse(qemuImg("info", "--output=json", t.path("v.vhdx"))) as Record<string, number>;
        expect(vi["cluster-size"]).toBe(qi["cluster-size"]);
        expect(vi["virtual-size"]).toBe(qi["virtual-size"]);
      } else {
        const qmsg = q.stderr.replace(/^qemu-img: [^:]+: /, "").trim();
        expect(vdiskError).toContain(qmsg);
      }
    });
  }
});
