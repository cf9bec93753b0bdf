// The NBD client side and many clients at once: openImage("nbd+unix://…") against qemu-nbd (an
// independent server), four concurrent vdisk clients with random reads and writes checked
// against a model, and the CLI opening URLs given on its command line but never one an image names.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { openImage, openNbd, serveNbd } from "../../src/node.js";
import { HAVE_QEMU_NBD, runTool, tool, warnNbdSkipped } from "../helpers/nbd.js";
import { tempDir } from "../helpers/qemu.js";

if (!HAVE_QEMU_NBD) warnNbdSkipped("NBD client interop");
const MiB = 1 << 20;
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir("vdisk-nbd-client-");
});
afterAll(() => tmp?.cleanup());

/** Starts qemu-nbd on a Unix socket and waits (5 s at most) for the socket to appear. */
async function qemuNbd(args: string[], sock: string): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn("qemu-nbd", ["-k", sock, ...args], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(sock)) {
    child.kill("SIGKILL");
    throw new Error("qemu-nbd did not create its socket");
  }
  return {
    child,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function cli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, isTTY: false });
  return { status, stdout, stderr };
}

/** A small deterministic generator (tests must be repeatable). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

describe.skipIf(!HAVE_QEMU_NBD)("NbdBackend against qemu-nbd", () => {
  it("openImage('nbd+unix:///?socket=…') reads what qemu-img reads and writes what qemu-io then finds", async () => {
    const file = tmp.path("q.qcow2");
    await tool("qemu-img", "create", "-q", "-f", "qcow2", file, String(8 * MiB));
    await tool("qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 1M", "-c", "write -P 0x62 3M 5000", file);
    const ref = tmp.path("q.raw");
    await tool("qemu-img", "convert", "-f", "qcow2", "-O", "raw", file, ref);
    const sock = tmp.path("q.sock");
    const server = await qemuNbd(["-f", "qcow2", "-t", "-e", "2", file], sock);
    let dev: Awaited<ReturnType<typeof openImage>> | undefined;
    try {
      dev = await openImage(`nbd+unix:///?socket=${sock}`, { format: "raw" });
      expect(dev.size).toBe(8 * MiB);
      const all = new Uint8Array(dev.size);
      await dev.readInto(0, all);
      expect(Buffer.from(all).equals(readFileSync(ref))).toBe(true);
      // Unaligned and larger than one request: split and widened by the backend.
      const data = Uint8Array.from({ length: 3 * MiB + 17 }, (_, i) => (i * 13) & 0xff);
      await dev.write(1234567, data);
      await dev.flush();
      expect(Buffer.from(await dev.read(1234567, data.length)).equals(Buffer.from(data))).toBe(true);
    } finally {
      await dev?.close().catch(() => {});
      await server.stop();
    }
    const check = await runTool("qemu-img", ["check", "-f", "qcow2", file]);
    expect(check.status, check.stderr).toBe(0);
    const model = readFileSync(ref);
    model.set(Uint8Array.from({ length: 3 * MiB + 17 }, (_, i) => (i * 13) & 0xff), 1234567);
    writeFileSync(ref, model);
    const cmp = await runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", file, ref]);
    expect(cmp.status, cmp.stdout).toBe(0);
  });

  it("a read-only qemu-nbd export opens read-only; a write fails with ERR_READ_ONLY", async () => {
    const file = tmp.path("r.raw");
    writeFileSync(file, Buffer.alloc(MiB, 7));
    const sock = tmp.path("r.sock");
    const server = await qemuNbd(["-f", "raw", "-r", "-t", file], sock);
    try {
      const io = await openNbd(`nbd+unix:///?socket=${sock}`);
      expect(io.capabilities.writable).toBe(false);
      await expect(io.write(0, new Uint8Array(512))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
      await io.close();
    } finally {
      await server.stop();
    }
  });
});

describe("four clients at once", () => {
  it("random reads and writes from 4 connections to one qcow2 export match a model; qemu-img agrees after", async () => {
    const file = tmp.path("c.qcow2");
    const SIZE = 8 * MiB;
    const create = await cli("create", "-q", "-f", "qcow2", file, String(SIZE));
    expect(create.status, create.stderr).toBe(0);
    const device = await openImage(file);
    const log: string[] = [];
    const handle = await serveNbd(device, { listen: { host: "127.0.0.1", port: 0 }, maxConnections: 4, log: (m) => log.push(m) });
    const model = new Uint8Array(SIZE);
    const BLOCK = 64 << 10;
    // Each client owns every fourth 64 KiB block, so concurrent writes never overlap and the model is exact.
    const clientRun = async (id: number): Promise<void> => {
      const io = await openNbd(handle.urls[0]);
      const rand = rng(1000 + id);
      const blocks = SIZE / BLOCK;
      const pending: Promise<void>[] = [];
      for (let op = 0; op < 120; op++) {
        const block = Math.floor(rand() * (blocks / 4)) * 4 + id;
        const start = block * BLOCK + Math.floor(rand() * BLOCK);
        const length = 1 + Math.floor(rand() * (block * BLOCK + BLOCK - start));
        if (rand() < 0.6) {
          const data = Uint8Array.from({ length }, () => (rand() * 256) | 0);
          model.set(data, start);
          pending.push(io.write(start, data));
        } else {
          // Reads wait for this client's writes, so what they must see is known.
          await Promise.all(pending.splice(0));
          const got = new Uint8Array(length);
          await io.read(start, got);
          expect(Buffer.from(got).equals(Buffer.from(model.subarray(start, start + length)))).toBe(true);
        }
        if (pending.length >= 8) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      await io.flush();
      await io.close();
    };
    await Promise.all([0, 1, 2, 3].map(clientRun));
    // The server notices each NBD_CMD_DISC a moment after the client sent it.
    for (let i = 0; i < 100 && handle.server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(handle.server.connectionCount).toBe(0);
    // Every client's data is visible through a fresh connection.
    const check = await openNbd(handle.urls[0]);
    const all = new Uint8Array(SIZE);
    await check.read(0, all);
    expect(Buffer.from(all).equals(Buffer.from(model))).toBe(true);
    await check.close();
    await handle.close();
    await device.close();
    expect(log).toEqual([]);
    if (HAVE_QEMU_NBD) {
      const modelFile = tmp.path("c-model.raw");
      writeFileSync(modelFile, model);
      const qc = await runTool("qemu-img", ["check", "-f", "qcow2", file]);
      expect(qc.status, qc.stdout + qc.stderr).toBe(0);
      const cmp = await runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", file, modelFile]);
      expect(cmp.status, cmp.stdout).toBe(0);
    }
  });
});

describe.skipIf(!HAVE_QEMU_NBD)("the CLI and NBD URLs", () => {
  it("vdisk info and convert open an nbd:// URL named on the command line", async () => {
    const file = tmp.path("u.raw");
    writeFileSync(file, Buffer.alloc(2 * MiB, 0x5a));
    const device = await openImage(file, { readOnly: true, format: "raw" });
    const handle = await serveNbd({ disk: device }, { listen: { port: 0 } });
    try {
      const info = await cli("info", "--output=json", handle.urls[0]);
      expect(info.status, info.stderr).toBe(0);
      expect(JSON.parse(info.stdout)["virtual-size"]).toBe(2 * MiB);
      const out = tmp.path("u-out.raw");
      const conv = await cli("convert", "-O", "raw", handle.urls[0], out);
      expect(conv.status, conv.stderr).toBe(0);
      expect(readFileSync(out).equals(readFileSync(file))).toBe(true);
      const missing = await cli("info", handle.urls[0].replace(/disk$/, "nope"));
      expect(missing.status).toBe(1);
      expect(missing.stderr).toMatch(/Could not open .*no such export/);
    } finally {
      await handle.close();
      await device.close();
    }
  });

  it("a backing file name that is an NBD URL is never connected to", async () => {
    const base = tmp.path("b.raw");
    writeFileSync(base, Buffer.alloc(MiB));
    const device = await openImage(base, { readOnly: true, format: "raw" });
    let connections = 0;
    const handle = await serveNbd(device, { listen: { port: 0 }, onConnectionCount: (n) => (connections += n > 0 ? 1 : 0) });
    try {
      const overlay = tmp.path("o.qcow2");
      await tool("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", handle.urls[0], "-F", "raw", overlay, String(MiB));
      const r = await cli("convert", "-O", "raw", overlay, tmp.path("o.raw"));
      expect(r.status).toBe(1);
      expect(connections).toBe(0);
    } finally {
      await handle.close();
      await device.close();
    }
  });
});

const HAVE_NBDKIT = spawnSync("sh", ["-c", "command -v nbdkit"]).status === 0;
if (!HAVE_NBDKIT) warnNbdSkipped("NbdBackend against nbdkit's blocksize-policy filter");

describe.skipIf(!HAVE_NBDKIT)("NbdBackend against nbdkit with block size constraints", () => {
  it("unaligned and oversized reads and writes become aligned requests within the limits", async () => {
    const sock = tmp.path("kit.sock");
    // The filter fails (EINVAL) any request that breaks the advertised constraints.
    const kit = spawn("nbdkit", [
      "-f", "-U", sock, "--filter=blocksize-policy", "memory", "1M",
      "blocksize-minimum=4096", "blocksize-preferred=4096", "blocksize-maximum=65536", "blocksize-error-policy=error",
    ], { stdio: "ignore" });
    const exited = new Promise<void>((r) => kit.on("exit", () => r()));
    let io: Awaited<ReturnType<typeof openNbd>> | undefined;
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
      io = await openNbd(`nbd+unix:///?socket=${sock}`);
      expect(io.exportInfo.minimumBlockSize).toBe(4096);
      expect(io.exportInfo.maximumPayload).toBe(65536);
      const model = new Uint8Array(1 << 20);
      const rand = rng(7);
      for (let i = 0; i < 20; i++) {
        const start = Math.floor(rand() * 900_000);
        const data = Uint8Array.from({ length: 1 + Math.floor(rand() * 150_000) }, () => (rand() * 256) | 0);
        const len = Math.min(data.length, model.length - start);
        model.set(data.subarray(0, len), start);
        await io.write(start, data.subarray(0, len));
      }
      const all = new Uint8Array(model.length);
      expect(await io.read(0, all)).toBe(all.length);
      expect(Buffer.from(all).equals(Buffer.from(model))).toBe(true);
      const part = new Uint8Array(70_001);
      await io.read(12_345, part);
      expect(Buffer.from(part).equals(Buffer.from(model.subarray(12_345, 12_345 + 70_001)))).toBe(true);
    } finally {
      // nbdkit waits for its clients before exiting.
      await io?.close().catch(() => {});
      kit.kill("SIGTERM");
      await exited;
    }
  });
});
