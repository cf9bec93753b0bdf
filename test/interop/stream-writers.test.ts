/**
 * The sequential writers against qemu-img 7.2: every accepted option combination, written by
 * convertToStream into a Node Writable (a file opened as a stream, never seeked), must pass
 * `qemu-img check` (where qemu can check the format; vdisk's check otherwise) and
 * `qemu-img compare` identical with the source. Sources: a sparse raw file with data, explicit
 * zeros and an odd tail; a qcow2 over a backing file; a compressed qcow2.
 */
import { createWriteStream, statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertToStream, openImage, type BlockDevice } from "../../src/node.js";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("stream writer interop tests");
const MIB = 1 << 20;
const tmp = tempDir("vdisk-stream-");
afterAll(() => tmp.cleanup());

/** 24 MiB + 1536 bytes: data runs, a written run of zeros, data at the odd end. */
const RAW_SIZE = 24 * MIB + 1536;
const RAW_WRITES = [
  "write -P 0x11 0 3M",
  "write -P 0x22 1234567 5000",
  "write -P 0 6M 2M",
  "write -P 0x33 9M 64k",
  "write -P 0x44 17M 3M",
  `write -P 0x55 ${RAW_SIZE - 4096} 4096`,
];

beforeAll(() => {
  if (!HAVE_QEMU) return;
  const raw = tmp.path("src.raw");
  qemuImg("create", "-f", "raw", raw, String(RAW_SIZE));
  qemuIo("raw", raw, RAW_WRITES);
  // A qcow2 over a backing file: the stream must flatten the chain.
  qemuImg("create", "-f", "qcow2", tmp.path("base.qcow2"), "16M");
  qemuIo("qcow2", tmp.path("base.qcow2"), ["write -P 0x61 0 8M", "write -P 0x62 12M 1M"]);
  qemuImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", tmp.path("top.qcow2"));
  qemuIo("qcow2", tmp.path("top.qcow2"), ["write -P 0x71 1M 1M", "write -z 4M 1M", "write -P 0x72 15M 100k"]);
  qemuImg("convert", "-c", "-O", "qcow2", raw, tmp.path("comp.qcow2"));
});

async function stream(srcName: string, out: string, opts: Parameters<typeof convertToStream>[2]): Promise<number> {
  const src: BlockDevice = await openImage(tmp.path(srcName), { readOnly: true, backing: "same-dir" });
  try {
    const r = await convertToStream(src, createWriteStream(out), opts);
    expect(statSync(out).size).toBe(r.bytesWritten);
    return r.bytesWritten;
  } finally {
    await src.close();
  }
}

/** The format qemu-img must detect, and whether qemu-img can check it. */
const QEMU_FORMAT: Record<string, { fmt: string; checks: boolean }> = {
  raw: { fmt: "raw", checks: false },
  qcow2: { fmt: "qcow2", checks: true },
  vmdk: { fmt: "vmdk", checks: true },
  vpc: { fmt: "vpc", checks: false },
};

async function expectValid(out: string, format: string, srcName: string, srcFormat: string, fixedVhd: boolean): Promise<void> {
  const q = QEMU_FORMAT[format]!;
  const info = JSON.parse(qemuImg("info", "--output=json", out)) as { format: string };
  // qemu probes a fixed VHD (no header copy at offset 0) as raw, as it does its own.
  expect(info.format).toBe(fixedVhd ? "raw" : q.fmt);
  if (q.checks) {
    const c = qemuCheck(out, q.fmt);
    expect(c.status, JSON.stringify(c.json)).toBe(0);
  } else if (format !== "raw") {
    const img = await openImage(out, { readOnly: true, format });
    try {
      const r = await img.check();
      expect(r.corruptions + r.leaks + r.checkErrors, r.messages.join("\n")).toBe(0);
    } finally {
      await img.close();
    }
  }
  // Exit status 0: identical (a size mismatch with zero tail is allowed, as qemu-img says).
  const cmp = qemuImgStatus("compare", "-f", srcFormat, "-F", q.fmt, tmp.path(srcName), out);
  expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
}

interface Case {
  label: string;
  format: string;
  options?: Record<string, string>;
  compress?: boolean;
  sparseSize?: number;
}

const CASES: Case[] = [
  { label: "raw", format: "raw" },
  { label: "qcow2 defaults", format: "qcow2" },
  { label: "qcow2 -S 0 (no zero scan)", format: "qcow2", sparseSize: 0 },
  { label: "qcow2 cluster_size=512", format: "qcow2", options: { cluster_size: "512" } },
  { label: "qcow2 cluster_size=4k compat=0.10", format: "qcow2", options: { cluster_size: "4k", compat: "0.10" } },
  { label: "qcow2 cluster_size=2M", format: "qcow2", options: { cluster_size: "2M" } },
  { label: "qcow2 refcount_bits=1", format: "qcow2", options: { refcount_bits: "1" } },
  { label: "qcow2 refcount_bits=64 lazy_refcounts=on", format: "qcow2", options: { refcount_bits: "64", lazy_refcounts: "on" } },
  { label: "qcow2 -c", format: "qcow2", compress: true },
  { label: "qcow2 -c cluster_size=4k compat=0.10", format: "qcow2", compress: true, options: { cluster_size: "4k", compat: "0.10" } },
  { label: "qcow2 -c refcount_bits=1", format: "qcow2", compress: true, options: { refcount_bits: "1", cluster_size: "2k" } },
  { label: "qcow2 -c compression_type=zstd", format: "qcow2", compress: true, options: { compression_type: "zstd" } },
  { label: "vmdk streamOptimized", format: "vmdk", options: { subformat: "streamOptimized" } },
  {
    label: "vmdk streamOptimized lsilogic -S 0",
    format: "vmdk",
    options: { subformat: "streamOptimized", adapter_type: "lsilogic", hwversion: "7" },
    sparseSize: 0,
  },
  { label: "vpc dynamic", format: "vpc" },
  { label: "vpc dynamic force_size=on", format: "vpc", options: { force_size: "on" } },
  { label: "vpc fixed", format: "vpc", options: { subformat: "fixed" } },
];

const SOURCES: Array<[string, string]> = [
  ["src.raw", "raw"],
  ["top.qcow2", "qcow2"],
  ["comp.qcow2", "qcow2"],
];

describe.skipIf(!HAVE_QEMU)("convertToStream into a Node Writable", () => {
  for (const [srcName, srcFormat] of SOURCES) {
    for (const c of CASES) {
      // The full option matrix on the raw source; the other sources with each format's defaults.
      if (srcName !== "src.raw" && c.options && Object.keys(c.options).some((k) => k !== "subformat")) continue;
      it(`${srcName} → ${c.label}: qemu-img check clean, compare identical`, async () => {
        const out = tmp.path(`${srcName}-${c.label.replace(/[^a-z0-9]+/gi, "_")}.${c.format}`);
        await stream(srcName, out, { format: c.format, options: c.options, compress: c.compress, sparseSize: c.sparseSize });
        await expectValid(out, c.format, srcName, srcFormat, c.options?.subformat === "fixed");
      });
    }
  }

  it("leaves all-zero clusters of a raw source unallocated (zero scan), and -S 0 keeps them", async () => {
    const scanned = tmp.path("scan.qcow2");
    const kept = tmp.path("keep.qcow2");
    await stream("src.raw", scanned, { format: "qcow2" });
    await stream("src.raw", kept, { format: "qcow2", sparseSize: 0 });
    const map = (f: string): Array<{ start: number; length: number; data: boolean }> =>
      JSON.parse(qemuImg("map", "--output=json", f)) as Array<{ start: number; length: number; data: boolean }>;
    const dataBytes = (f: string): number => map(f).filter((e) => e.data).reduce((n, e) => n + e.length, 0);
    // qemu-img's own convert allocates the same clusters (its zero detection is per 4 KiB, ours
    // per cluster: every written cluster here is whole).
    const ref = tmp.path("ref.qcow2");
    qemuImg("convert", "-O", "qcow2", tmp.path("src.raw"), ref);
    expect(dataBytes(scanned)).toBe(dataBytes(ref));
    // vdisk's raw files have no hole map: without the scan every cluster is stored.
    expect(dataBytes(kept)).toBe(RAW_SIZE);
  });

  it("refuses what cannot be streamed before writing a byte", async () => {
    const refusals: Array<[Case, RegExp]> = [
      [{ label: "", format: "qed" }, /Cannot write qed to a non-seekable output: .*formats that can: .*qcow2/],
      [{ label: "", format: "vmdk" }, /subformat=streamOptimized/],
      [{ label: "", format: "qcow2", options: { extended_l2: "on" } }, /extended_l2/],
      [{ label: "", format: "qcow2", options: { preallocation: "metadata" } }, /preallocation/],
      [{ label: "", format: "qcow2", options: { data_file: "x.raw" } }, /data_file/],
      [{ label: "", format: "vpc", compress: true }, /Compression not supported/],
      [{ label: "", format: "raw", compress: true }, /Compression not supported/],
      [{ label: "", format: "qcow2", options: { nonsense: "1" } }, /Invalid option 'nonsense'/],
    ];
    for (const [c, re] of refusals) {
      const out = tmp.path("refused.bin");
      const sink = createWriteStream(out);
      const src = await openImage(tmp.path("src.raw"), { readOnly: true });
      try {
        await expect(convertToStream(src, sink, { format: c.format, options: c.options, compress: c.compress })).rejects.toThrow(re);
      } finally {
        await src.close();
      }
      expect(sink.destroyed).toBe(true);
    }
  });
});
