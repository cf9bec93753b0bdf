// `vdisk serve` checked with real NBD clients: nbdinfo (sizes, flags, the allocation map),
// nbdcopy, qemu-img convert and qemu-io over nbd:// URLs, and qemu-img check/compare on the
// served image after the server has exited.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/qemu.js";
import { HAVE_LIBNBD, HAVE_QEMU_NBD, VDISK_BIN, runTool, startServe, tool, warnNbdSkipped } from "../helpers/nbd.js";

const ok = HAVE_LIBNBD && HAVE_QEMU_NBD;
if (!ok) warnNbdSkipped("vdisk serve interop");

const MiB = 1 << 20;
const SIZE = 16 * MiB;
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir("vdisk-nbd-");
});
afterAll(() => tmp?.cleanup());

/** The same guest writes for every format: data, an explicit zero range, more data. */
async function makeImage(format: string, name: string): Promise<string> {
  const file = tmp.path(name);
  const opts = format === "vmdk" ? ["-o", "subformat=monolithicSparse"] : [];
  await tool("qemu-img", "create", "-q", "-f", format, ...opts, file, String(SIZE));
  await tool("qemu-io", "-f", format, "-c", "write -P 0xab 1M 2M", "-c", "write -z 8M 1M", "-c", "write -P 0x3c 12M 64k",
    "-c", "write -P 0x77 15M 512k", file);
  return file;
}

interface Range {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

/** Joins neighbours with the same flags, so two maps of one disk compare equal. */
function merged(ranges: Range[]): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.data === r.data && last.zero === r.zero && last.start + last.length === r.start) last.length += r.length;
    else out.push({ ...r });
  }
  return out;
}

/** `nbdinfo --map` lines: start, length, state (bit 0 hole, bit 1 zero), description. */
function parseNbdMap(text: string): Range[] {
  return text.trim().split("\n").map((line) => {
    const [start, length, type] = line.trim().split(/\s+/).map(Number);
    return { start, length, data: (type & 1) === 0, zero: (type & 2) !== 0 };
  });
}

const FORMATS: Array<[string, string]> = [["raw", "img"], ["qcow2", "qcow2"], ["vmdk", "vmdk"], ["vhdx", "vhdx"], ["vdi", "vdi"], ["qed", "qed"]];

describe.skipIf(!ok)("vdisk serve, read-only, each format", () => {
  for (const [format, ext] of FORMATS) {
    it(`${format}: nbdinfo, the map, qemu-img convert and nbdcopy agree with vdisk and qemu-img; writes get EPERM`, async () => {
      const file = await makeImage(format, `ro.${ext}`);
      const server = await startServe(["-r", "-t", "-e", "4", "-p", "0", "-x", "disk", "-f", format, file]);
      try {
        const url = server.urls[0];
        expect(url).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/disk$/);

        const info = JSON.parse(await tool("nbdinfo", "--json", url)) as { exports: Array<Record<string, unknown>> };
        const ex = info.exports[0];
        const qemuInfo = JSON.parse(await tool("qemu-img", "info", "--output=json", "-f", format, file)) as { "virtual-size": number };
        expect(ex["export-name"]).toBe("disk");
        expect(ex["export-size"]).toBe(qemuInfo["virtual-size"]);
        expect(ex.is_read_only).toBe(true);
        expect(ex.can_multi_conn).toBe(true);
        expect(ex.can_flush).toBe(true);
        expect(ex.contexts).toContain("base:allocation");
        expect(ex.block_size_minimum).toBe(1);
        expect(ex.block_size_maximum).toBe(32 * MiB);

        // The map served equals vdisk map's data/zero ranges (and qemu-img map's, independently).
        const nbdMap = merged(parseNbdMap(await tool("nbdinfo", "--map", url)));
        const vdiskMap = merged((JSON.parse(await tool(process.execPath, VDISK_BIN, "map", "--output=json", "-f", format, file)) as Range[]));
        const strip = (rs: Range[]): Range[] => rs.map(({ start, length, data, zero }) => ({ start, length, data, zero }));
        expect(nbdMap).toEqual(strip(vdiskMap));
        expect(nbdMap.some((r) => r.data)).toBe(true);
        // Formats whose unwritten ranges are unallocated (raw and vhdx here report data/zero
        // as the file system or the BAT says; the equality above covers them).
        if (["qcow2", "vmdk", "vdi", "qed"].includes(format)) expect(nbdMap.some((r) => !r.data && r.zero)).toBe(true);

        // Bytes: qemu-img convert over NBD = vdisk convert = qemu-img convert of the file.
        const overNbd = tmp.path(`${format}-nbd.raw`);
        const byVdisk = tmp.path(`${format}-vdisk.raw`);
        const byQemu = tmp.path(`${format}-qemu.raw`);
        await tool("qemu-img", "convert", "-O", "raw", url, overNbd);
        await tool(process.execPath, VDISK_BIN, "convert", "-f", format, "-O", "raw", file, byVdisk);
        await tool("qemu-img", "convert", "-f", format, "-O", "raw", file, byQemu);
        const expected = readFileSync(byQemu);
        expect(readFileSync(overNbd).equals(expected)).toBe(true);
        expect(readFileSync(byVdisk).equals(expected)).toBe(true);

        const copied = tmp.path(`${format}-nbdcopy.raw`);
        await tool("nbdcopy", url, copied);
        expect(readFileSync(copied).equals(expected)).toBe(true);

        // A read-only export is advertised so: qemu-io will not even open it for writing (the
        // EPERM a write gets anyway is checked on the wire in protocol.test.ts). It keeps serving.
        const w = await runTool("qemu-io", ["-f", "raw", "-c", "write -P 0x11 0 4k", url]);
        expect(w.status).not.toBe(0);
        expect(w.stdout + w.stderr).toMatch(/Permission denied|Operation not permitted/);
        const r = await runTool("qemu-io", ["-r", "-f", "raw", "-c", "read -P 0xab 1M 4k", url]);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("read 4096/4096");
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });
  }
});

describe.skipIf(!ok)("vdisk serve, writable", () => {
  it("qemu-io writes over NBD land in the qcow2 image: qemu-img check is clean and compare equals a model", async () => {
    const file = tmp.path("rw.qcow2");
    const model = tmp.path("rw-model.raw");
    await tool("qemu-img", "create", "-q", "-f", "qcow2", file, String(SIZE));
    await tool("qemu-img", "create", "-q", "-f", "raw", model, String(SIZE));
    const commands = [
      "write -P 0x11 0 64k", "write -P 0x22 100k 300k", "write -P 0x33 5M 2M", "write -z 5M 1M",
      "write -z -u 6M 512k", "discard 100k 64k", "write -P 0x44 15M 1M", "write -P 0x55 4095 2", "flush",
    ];
    const args = commands.flatMap((c) => ["-c", c]);
    const server = await startServe(["-t", "-p", "0", "-f", "qcow2", file]);
    let code: number | string;
    try {
      const url = server.urls[0];
      expect(url).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/$/);
      const info = JSON.parse(await tool("nbdinfo", "--json", url)) as { exports: Array<Record<string, unknown>> };
      expect(info.exports[0].is_read_only).toBe(false);
      expect(info.exports[0].can_zero).toBe(true);
      expect(info.exports[0].can_trim).toBe(true);
      expect(info.exports[0].can_fua).toBe(true);
      // -e 1 (the default): one client at a time, so no multi-conn.
      expect(info.exports[0].can_multi_conn).toBe(false);
      await tool("qemu-io", "-f", "raw", ...args, url);
      // Discard only deallocates: the model gets what the image now reads there.
      const after = tmp.path("after.raw");
      await tool("qemu-img", "convert", "-O", "raw", url, after);
      expect(readFileSync(after).subarray(100 << 10, 164 << 10).every((b) => b === 0 || b === 0x22)).toBe(true);
    } finally {
      code = await server.stop();
    }
    expect(code).toBe(0);
    await tool("qemu-io", "-f", "raw", ...commands.filter((c) => !c.startsWith("discard")).flatMap((c) => ["-c", c]), model);
    // What the served image reads at the discarded range decides the model there (zeros for qcow2 v3).
    const img = tmp.path("rw-final.raw");
    await tool("qemu-img", "convert", "-f", "qcow2", "-O", "raw", file, img);
    const m = readFileSync(model);
    m.set(readFileSync(img).subarray(100 << 10, 164 << 10), 100 << 10);
    writeFileSync(model, m);
    const check = await runTool("qemu-img", ["check", "-f", "qcow2", file]);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const cmp = await runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", file, model]);
    expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
  });

  it("nbdcopy writes a raw file into a served vmdk and vdi export; after exit the images equal the file", async () => {
    const src = tmp.path("src.raw");
    const data = new Uint8Array(SIZE);
    for (let i = 0; i < data.length; i += 4096) if ((i >> 12) % 3 !== 0) data.fill((i >> 12) & 0xff, i, i + 4096);
    writeFileSync(src, data);
    const a = tmp.path("copy.vmdk");
    const b = tmp.path("copy.vdi");
    await tool("qemu-img", "create", "-q", "-f", "vmdk", a, String(SIZE));
    await tool("qemu-img", "create", "-q", "-f", "vdi", b, String(SIZE));
    const server = await startServe(["-t", "-e", "4", "-p", "0", "-x", "a", "-x", "b", a, b], 2);
    try {
      expect(server.urls.map((u) => u.replace(/.*\//, ""))).toEqual(["a", "b"]);
      await tool("nbdcopy", src, server.urls[0]);
      await tool("nbdcopy", "--connections=1", src, server.urls[1]);
      const list = await tool("nbdinfo", "--list", "--json", server.urls[0]);
      const names = (JSON.parse(list) as { exports: Array<{ "export-name": string }> }).exports.map((e) => e["export-name"]);
      expect(names.sort()).toEqual(["a", "b"]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    for (const [file, fmt] of [[a, "vmdk"], [b, "vdi"]]) {
      const cmp = await runTool("qemu-img", ["compare", "-f", fmt, "-F", "raw", file, src]);
      expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
      const check = await runTool("qemu-img", ["check", "-f", fmt, file]);
      expect(check.status, check.stdout + check.stderr).toBe(0);
    }
  });

  it("without -t, vdisk serve exits 0 once its last client has left; --pid-file is written and removed", async () => {
    const file = await makeImage("qcow2", "once.qcow2");
    const pid = tmp.path("serve.pid");
    const server = await startServe(["-p", "0", "--pid-file", pid, "--allocation-depth", file]);
    expect(Number(readFileSync(pid, "utf8"))).toBe(server.child.pid);
    const depth = await tool("nbdinfo", "--map=qemu:allocation-depth", server.urls[0]);
    // Depth 1: allocated in the top image (data and the explicit zero range); 0: unallocated.
    const rows = depth.trim().split("\n").map((l) => l.trim().split(/\s+/).slice(0, 3).map(Number));
    expect(rows.find((r) => r[0] === 8 * MiB)?.[2]).toBe(1);
    expect(rows.find((r) => r[0] === 0)?.[2]).toBe(0);
    expect(await server.exited).toBe(0);
    expect(() => readFileSync(pid)).toThrow();
  });

  it("SIGINT stops vdisk serve -t with exit 0; a unix socket (-k) serves the same bytes", async () => {
    const file = await makeImage("vhdx", "sock.vhdx");
    const sock = tmp.path("nbd.sock");
    const server = await startServe(["-t", "-k", sock, "-r", file]);
    expect(server.urls[0]).toBe(`nbd+unix:///?socket=${encodeURIComponent(sock)}`);
    const out = tmp.path("sock.raw");
    await tool("nbdcopy", `nbd+unix:///?socket=${sock}`, out);
    const ref = tmp.path("sock-ref.raw");
    await tool("qemu-img", "convert", "-f", "vhdx", "-O", "raw", file, ref);
    expect(readFileSync(out).equals(readFileSync(ref))).toBe(true);
    server.child.kill("SIGINT");
    expect(await server.exited).toBe(0);
  });
});

describe.skipIf(!ok)("vdisk serve against qemu-nbd", () => {
  it("a qcow2 backing chain: base:allocation and qemu:allocation-depth maps equal qemu-nbd's", async () => {
    const base = tmp.path("chain-base.qcow2");
    const top = tmp.path("chain-top.qcow2");
    await tool("qemu-img", "create", "-q", "-f", "qcow2", base, String(SIZE));
    await tool("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 2M", "-c", "write -z 4M 1M", base);
    await tool("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top);
    await tool("qemu-io", "-f", "qcow2", "-c", "write -P 2 1M 2M", "-c", "write -z 8M 64k", "-c", "discard 0 64k", top);
    const qemuSock = tmp.path("chain-qemu.sock");
    const qemu = spawn("qemu-nbd", ["-r", "-t", "-A", "-k", qemuSock, "-f", "qcow2", top], { stdio: "ignore" });
    const qemuExited = new Promise((r) => qemu.on("exit", r));
    const server = await startServe(["-r", "-t", "--allocation-depth", "-k", tmp.path("chain-vdisk.sock"), "-f", "qcow2", top]);
    try {
      const qemuUrl = `nbd+unix:///?socket=${qemuSock}`;
      for (let i = 0; i < 100 && (await runTool("nbdinfo", ["--size", qemuUrl])).status !== 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const vdiskUrl = `nbd+unix:///?socket=${tmp.path("chain-vdisk.sock")}`;
      for (const ctx of ["base:allocation", "qemu:allocation-depth"]) {
        const theirs = await tool("nbdinfo", `--map=${ctx}`, qemuUrl);
        const ours = await tool("nbdinfo", `--map=${ctx}`, vdiskUrl);
        expect(ours, ctx).toBe(theirs);
      }
      // Data from both layers, as qemu-nbd serves it.
      const a = tmp.path("chain-qemu.raw");
      const b = tmp.path("chain-vdisk.raw");
      await tool("nbdcopy", qemuUrl, a);
      await tool("nbdcopy", vdiskUrl, b);
      expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    } finally {
      qemu.kill("SIGTERM");
      await qemuExited;
      expect(await server.stop()).toBe(0);
    }
  });
});
