// Shared pieces of the convert-style benchmarks (bench/formats.mjs; bench/convert.mjs may switch to
// them): argument and size parsing, the benchmark directory (tmpfs when it has room), the
// deterministic half-full raw workload, timing a command with its CPU time and peak RSS, medians.
// Plain Node, no dependencies; nothing here is a benchmark itself (bench/run.mjs only runs the
// *.mjs files directly in bench/).
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, statfsSync, writeSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";

/** The workload's allocation unit: data and zero runs are whole 64 KiB clusters. */
export const WORKLOAD_CLUSTER = 65536;

/**
 * Command-line options of the form `--name value` and `--flag`. Unknown options are ignored, so
 * `npm run bench -- --quick` can pass the same arguments to every script.
 */
export function parseArgs(argv = process.argv.slice(2)) {
  return {
    /** The value after `--name`, or `def`. */
    get(name, def) {
      const i = argv.indexOf(`--${name}`);
      return i >= 0 && i + 1 < argv.length ? argv[i + 1] : def;
    },
    /** Whether `--name` is present. */
    has(name) {
      return argv.includes(`--${name}`);
    },
  };
}

/** "4G", "512M", "1.5g", "65536" → bytes (binary units, as qemu-img). */
export function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)i?b?$/i.exec(String(text).trim());
  if (!m) throw new Error(`bad size "${text}" (expected e.g. 4G, 512M)`);
  return Math.floor(Number(m[1]) * 1024 ** " kmgt".indexOf(m[2].toLowerCase() || " "));
}

/** Bytes as GiB with two decimals. */
export const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** Free bytes for an unprivileged writer on the file system holding `dir` (0 when unknown). */
export function freeBytes(dir) {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
}

/**
 * Makes a fresh directory for a benchmark's files: under `dir` when given, else /dev/shm when it
 * has `need` bytes free (tmpfs: no disk in the measurement), else the OS temp directory (disk,
 * page cache) — then `note` says so. Throws when the chosen file system has less than `need`.
 */
export function benchDir({ dir, need, prefix }) {
  let note = "";
  let base = dir;
  if (!base) {
    if (freeBytes("/dev/shm") >= need) base = "/dev/shm";
    else {
      base = tmpdir();
      note = `note: /dev/shm has less than ${gib(need)} free; using ${base} (disk, through the page cache)`;
    }
  }
  const free = freeBytes(base);
  if (free < need) throw new Error(`${base} has ${gib(free)} free; the benchmark needs about ${gib(need)} (use --dir or a smaller --size)`);
  const path = join(base, `${prefix}-${process.pid}`);
  mkdirSync(path, { recursive: true });
  return { path, note };
}

/**
 * Writes the standard workload as a sparse raw file of `size` bytes: alternating runs of random
 * data and of zeros (holes), each 1–64 clusters of 64 KiB, so about half the image is data.
 * Deterministic (xorshift128 with fixed seeds): every run and every script sees the same image.
 * Returns the data bytes written and the seconds it took.
 */
export function writeWorkloadRaw(path, size) {
  let s0 = 0x9e3779b9, s1 = 0x243f6a88, s2 = 0xb7e15162, s3 = 0x12345678;
  const next = () => {
    const t = s0 ^ (s0 << 11);
    s0 = s1; s1 = s2; s2 = s3;
    s3 = (s3 ^ (s3 >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return s3;
  };
  const runLength = () => 1 + (next() % 64);
  const t0 = performance.now();
  const fd = openSync(path, "w");
  let dataBytes = 0;
  try {
    ftruncateSync(fd, size);
    const clusters = Math.ceil(size / WORKLOAD_CLUSTER);
    const buf = new Uint8Array(64 * WORKLOAD_CLUSTER);
    const words = new Uint32Array(buf.buffer);
    for (let c = 0; c < clusters; ) {
      const n = Math.min(runLength(), clusters - c);
      const len = Math.min(n * WORKLOAD_CLUSTER, size - c * WORKLOAD_CLUSTER);
      for (let i = 0; i < len >>> 2; i++) words[i] = next();
      writeSync(fd, buf, 0, len, c * WORKLOAD_CLUSTER);
      dataBytes += len;
      c += n + runLength(); // then a zero run
    }
  } finally {
    closeSync(fd);
  }
  return { dataBytes, secs: (performance.now() - t0) / 1000 };
}

const hasGnuTime = existsSync("/usr/bin/time");

/**
 * Runs `cmd args` with stdout discarded. Resolves to wall seconds, CPU seconds (user + system;
 * NaN without /usr/bin/time) and peak RSS in KiB (from GNU time, else by polling /proc's VmHWM).
 * Rejects with the command's stderr when it exits non-zero.
 */
export function timed(cmd, args, { env } = {}) {
  return new Promise((resolve, reject) => {
    const [file, argv] = hasGnuTime ? ["/usr/bin/time", ["-f", "%M %U %S", cmd, ...args]] : [cmd, args];
    const t0 = process.hrtime.bigint();
    const child = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe"], env: env ? { ...process.env, ...env } : process.env });
    let err = "";
    let peak = 0;
    const poll = hasGnuTime
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
            if (m) peak = Math.max(peak, Number(m[1]));
          } catch {
            /* exited between polls */
          }
        }, 20);
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      if (poll) clearInterval(poll);
      const lines = err.trimEnd().split("\n");
      let cpu = NaN;
      if (hasGnuTime) {
        const [m, u, s] = (lines.pop() ?? "").split(" ").map(Number);
        peak = m;
        cpu = u + s;
        if (lines.length && /^Command exited with non-zero status/.test(lines[lines.length - 1])) lines.pop();
      }
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} failed (exit ${code}): ${lines.join("\n")}`));
      else resolve({ secs, cpu, peakKiB: peak });
    });
  });
}

/** Runs a command to completion, throwing with its output when it fails (for preparing inputs). */
export function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 * 2 ** 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal}): ${r.stdout}${r.stderr}`.trim());
  return r.stdout;
}

/** The median (upper median for an even count) of a list of numbers. */
export function median(xs) {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}

/** "load average 1.4 1.4 3.3 on 2 CPUs" — printed with every result, since the machine is shared. */
export function loadLine() {
  return `load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} on ${cpus().length} CPUs`;
}

/** True when `qemu-img` runs; otherwise prints why the benchmark is skipped. */
export function haveQemuImg(label) {
  if (spawnSync("qemu-img", ["--version"]).status === 0) return true;
  console.error(`${label}: qemu-img not found; install qemu-utils. Skipping.`);
  return false;
}
