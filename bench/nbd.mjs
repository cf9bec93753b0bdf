#!/usr/bin/env node
// NBD serving benchmark: `nbdcopy` reading an export of `vdisk serve` (the built bin) against one
// of `qemu-nbd`, the same image in the same run, raw and qcow2. Run `npm run build` first.
//
//   node bench/nbd.mjs [--size 1G | --quick] [--rounds 7] [--dir /dev/shm] [--connections 4]
//
// --quick is --size 256M.
//
// Method: the standard workload (bench/lib/workload.mjs: about half random data in runs of 1–64
// clusters of 64 KiB, half zeros), as raw and as qcow2 (made by qemu-img). Each round starts
// each server on a fresh loopback port (-r -t -e N, N = --connections, also nbdcopy's
// --connections), times `nbdcopy URL null:` (reads the data, skips what block status reports as
// zero), and stops the server; which server goes first alternates between rounds. Only the copy
// is timed. Reported: median seconds, MiB/s of the virtual size, and the ratio vdisk/qemu-nbd
// of the medians (above 1 = vdisk slower).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchDir, gib, haveQemuImg, loadLine, median, parseArgs, parseSize, run, timed, writeWorkloadRaw } from "./lib/workload.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = parseArgs();
const SIZE = parseSize(args.get("size", args.has("quick") ? "256M" : "1G"));
const ROUNDS = Math.max(1, Number(args.get("rounds", "7")));
const CONNECTIONS = Math.max(1, Number(args.get("connections", "4")));
const VDISK = join(root, "dist", "cli", "main.js");

const have = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
if (!haveQemuImg("nbd bench")) process.exit(0);
if (!have("nbdcopy") || !have("qemu-nbd")) {
  console.error("nbd bench: nbdcopy (libnbd-bin) or qemu-nbd (qemu-utils) not found. Skipping.");
  process.exit(0);
}
if (!existsSync(VDISK)) {
  console.error(`nbd bench: ${VDISK} not found; run npm run build first.`);
  process.exit(1);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a server and resolves once `nbdinfo`-free probing (a TCP connect) succeeds. */
async function startServer(kind, format, file) {
  const port = await freePort();
  const argv = kind === "vdisk"
    ? [VDISK, "serve", "-r", "-t", "-e", String(CONNECTIONS), "-p", String(port), "-f", format, file]
    : ["-r", "-t", "-e", String(CONNECTIONS), "-b", "127.0.0.1", "-p", String(port), "-f", format, file];
  const child = spawn(kind === "vdisk" ? process.execPath : "qemu-nbd", argv, { stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise((r) => child.on("exit", r));
  const url = `nbd://127.0.0.1:${port}/`;
  for (let i = 0; i < 200; i++) {
    if (spawnSync("nbdinfo", ["--size", url], { stdio: "ignore" }).status === 0) {
      return { url, stop: async () => (child.kill("SIGTERM"), await exited) };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`${kind} did not start serving ${file}`);
}

const { path: dir, note } = benchDir({ dir: args.get("dir"), need: SIZE * 1.2, prefix: "vdisk-nbd-bench" });
if (note) console.log(note);
try {
  const raw = join(dir, "w.raw");
  const qcow2 = join(dir, "w.qcow2");
  const { dataBytes } = writeWorkloadRaw(raw, SIZE);
  run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  console.log(`nbd bench: ${gib(SIZE)} virtual, ${gib(dataBytes)} data; ${ROUNDS} rounds; nbdcopy --connections=${CONNECTIONS}; ${loadLine()}`);
  for (const [format, file] of [["raw", raw], ["qcow2", qcow2]]) {
    const secs = { vdisk: [], qemu: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ["vdisk", "qemu"] : ["qemu", "vdisk"];
      for (const kind of order) {
        const server = await startServer(kind, format, file);
        try {
          const t = await timed("nbdcopy", [`--connections=${CONNECTIONS}`, server.url, "null:"]);
          secs[kind].push(t.secs);
        } finally {
          await server.stop();
        }
      }
    }
    const mv = median(secs.vdisk);
    const mq = median(secs.qemu);
    const mibs = (s) => (SIZE / 2 ** 20 / s).toFixed(0);
    console.log(
      `${format.padEnd(6)} vdisk serve ${mv.toFixed(3)} s (${mibs(mv)} MiB/s)  qemu-nbd ${mq.toFixed(3)} s (${mibs(mq)} MiB/s)  ratio ${(mv / mq).toFixed(2)}`,
    );
    console.log(`       runs vdisk ${secs.vdisk.map((s) => s.toFixed(3)).join(" ")} | qemu-nbd ${secs.qemu.map((s) => s.toFixed(3)).join(" ")}`);
  }
  console.log(loadLine());
} finally {
  rmSync(dir, { recursive: true, force: true });
}
