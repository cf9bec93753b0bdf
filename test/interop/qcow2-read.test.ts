/**
 * qcow2 images made by qemu-img / qemu-io read byte-identical through vdisk to
 * `qemu-img convert -O raw`, for every create option, compressed clusters, backing chains,
 * snapshots and an image left dirty by an abort.
 */
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { HAVE_QEMU, qemuImg, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("qcow2 interop read tests");

const SIZE = 4 << 20;
const PATTERN = [
  "write -P 0x11 0 65536",
  "write -P 0x22 1000 3000",
  "write -P 0x33 65000 2000",
  "write -P 0x44 1048064 1024",
  "write -P 0x55 2093056 8192",
  "write -z 3000 500",
  "write -P 0x66 3145728 131072",
  "write -z 3211264 65536",
  "write -z -u 3145728 65536",
  `write -P 0x88 ${SIZE - 777} 777`,
];

async function readAll(path: string, opts: Parameters<typeof openImage>[1] = {}): Promise<Uint8Array> {
  const img = await openImage(path, { readOnly: true, backing: "any", ...opts });
  try {
    return await img.read(0, img.size);
  } finally {
    await img.close();
  }
}

function rawOf(path: string, out: string, extra: string[] = []): Uint8Array {
  qemuImg("convert", "-O", "raw", ...extra, path, out);
  return new Uint8Array(readFileSync(out));
}

describe.skipIf(!HAVE_QEMU)("qcow2 images made by qemu read through vdisk", () => {
  const t = tempDir("vdisk-qcow2-read-");
  afterAll(() => t.cleanup());
  const variants = [
    "compat=0.10",
    "compat=1.1",
    "compat=1.1,cluster_size=512",
    "compat=0.10,cluster_size=4096",
    "compat=1.1,cluster_size=2M",
    "compat=1.1,extended_l2=on",
    "compat=1.1,extended_l2=on,cluster_size=16k",
    "compat=1.1,refcount_bits=1",
    "compat=1.1,refcount_bits=64",
    "compat=1.1,lazy_refcounts=on",
    "compat=1.1,preallocation=metadata",
    "compat=1.1,preallocation=metadata,extended_l2=on",
  ];
  for (const opts of variants) {
    it(`reads -o ${opts} like qemu-img convert`, async () => {
      const f = t.path(`${opts.replace(/[=,]/g, "_")}.qcow2`);
      qemuImg("create", "-q", "-f", "qcow2", "-o", opts, f, String(SIZE));
      qemuIo("qcow2", f, PATTERN);
      const expected = rawOf(f, f + ".raw");
      const got = await readAll(f);
      expect(got.length).toBe(expected.length);
      expect(Buffer.compare(Buffer.from(got), Buffer.from(expected))).toBe(0);
    });
  }

  for (const comp of ["zlib", "zstd"]) {
    for (const cs of ["64k", "512", "2M"]) {
      it(`reads convert -c compression_type=${comp} cluster_size=${cs}`, async () => {
        const raw = t.path(`src-${comp}-${cs}.raw`);
        qemuImg("create", "-q", "-f", "raw", raw, String(SIZE));
        qemuIo("raw", raw, PATTERN);
        const f = t.path(`c-${comp}-${cs}.qcow2`);
        qemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", `compression_type=${comp},cluster_size=${cs}`, raw, f);
        // Partial overwrites of compressed clusters turn them into normal ones.
        qemuIo("qcow2", f, ["write -P 0x99 16384 4096", "write -z 1048576 65536"]);
        const expected = rawOf(f, f + ".raw");
        const got = await readAll(f);
        expect(Buffer.compare(Buffer.from(got), Buffer.from(expected))).toBe(0);
      });
    }
  }

  it("reads a backing chain (qcow2 over qcow2 over raw, with backing_fmt)", async () => {
    const base = t.path("chain-base.raw");
    qemuImg("create", "-q", "-f", "raw", base, String(SIZE));
    qemuIo("raw", base, ["write -P 0xa1 0 4194304"]);
    const mid = t.path("chain-mid.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", "-b", "chain-base.raw", "-F", "raw", mid);
    qemuIo("qcow2", mid, ["write -P 0xb2 65536 65536", "write -z 131072 65536"]);
    const top = t.path("chain-top.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", "chain-mid.qcow2", "-F", "qcow2", top);
    qemuIo("qcow2", top, ["write -P 0xc3 4096 2048", "write -z 200000 4096", "discard 1048576 65536"]);
    const expected = rawOf(top, top + ".raw");
    const got = await readAll(top);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(expected))).toBe(0);
    const img = await openImage(top, { readOnly: true, backing: "any" });
    expect(img.backingFile).toEqual({ name: "chain-mid.qcow2", format: "qcow2" });
    await img.close();
  });

  it("reads the active layer of an image with internal snapshots and lists them", async () => {
    const f = t.path("snap.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", f, String(SIZE));
    qemuIo("qcow2", f, ["write -P 0x11 0 1048576"]);
    qemuImg("snapshot", "-c", "s1", f);
    qemuIo("qcow2", f, ["write -P 0x22 65536 4096", "write -z 131072 65536"]);
    qemuImg("snapshot", "-c", "second snap", f);
    qemuIo("qcow2", f, ["write -P 0x33 0 512"]);
    const expected = rawOf(f, f + ".raw");
    expect(Buffer.compare(Buffer.from(await readAll(f)), Buffer.from(expected))).toBe(0);
    for (const name of ["s1", "second snap"]) {
      const snapRaw = rawOf(f, t.path(`snap-${name}.raw`), ["-l", `snapshot.name=${name}`]);
      const got = await readAll(f, { format: "qcow2", driverOptions: { "snapshot.name": name } });
      expect(Buffer.compare(Buffer.from(got), Buffer.from(snapRaw)), name).toBe(0);
    }
    const img = await openImage(f, { readOnly: true });
    const info = await img.info();
    const q = JSON.parse(qemuImg("info", "--output=json", f)) as { snapshots: Array<Record<string, unknown>> };
    expect(info.snapshots?.map((s) => [s.id, s.name, s.vmStateSize, s.dateSec, s.dateNsec, s.vmClockNsec, s.icount])).toEqual(
      q.snapshots.map((s) => [s.id, s.name, s["vm-state-size"], s["date-sec"], s["date-nsec"], s["vm-clock-nsec"], s.icount]),
    );
    await img.close();
  });

  it("reads an image left dirty by qemu-io abort (lazy refcounts)", async () => {
    const f = t.path("dirty.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", f, String(SIZE));
    try {
      qemuIo("qcow2", f, [...PATTERN, "abort"]);
    } catch {
      // qemu-io aborts on purpose
    }
    const expected = rawOf(f, f + ".raw");
    const img = await openImage(f, { readOnly: true });
    expect((await img.info()).dirty).toBe(true);
    expect(Buffer.compare(Buffer.from(await img.read(0, img.size)), Buffer.from(expected))).toBe(0);
    await img.close();
  });
});
