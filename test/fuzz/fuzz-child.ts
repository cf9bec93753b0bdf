/**
 * One fuzz worker (run by fuzz.test.ts in its own process, so a hang or a blown memory bound
 * is caught from outside). Arguments: a JSON job `{ formats, seeds, count }`. For each format
 * it makes small valid images with vdisk, then runs `count` mutants per seed through open,
 * info, check, map, convert and a read of everything, and every third one that opens through
 * writes, a flush, a repairing check and a reopen (on a copy). It prints one JSON line per event:
 * `{ start }` before a mutant, `{ bad }` for anything but success or an ImageError (an
 * unhandled rejection included), `{ end, rss }` after it, `{ finished }` at the end.
 */
import {
  checkImage,
  convertImage,
  createImageOn,
  imageInfo,
  isImageError,
  mapImage,
  MemoryBackend,
  openImageOn,
  type BlockDevice,
} from "../../src/index.js";
import { spawnSync } from "node:child_process";
import { findSites, mutate, rng, type MutationSites } from "./mutate.js";

interface Job {
  formats: string[];
  seeds: number[];
  count: number;
  /** Formats vdisk cannot create (read-only ones): a bzip2'd sample image to mutate. */
  samples?: Record<string, string>;
}

/** Base images per format: create options, and the cluster size the mutator aims offsets at. */
const BASES: Record<string, Array<{ options?: string; cluster: number }>> = {
  qcow2: [{ options: "cluster_size=4k", cluster: 4096 }, { options: "cluster_size=64k,extended_l2=on", cluster: 65536 }],
  qcow: [{ cluster: 4096 }],
  qed: [{ options: "cluster_size=4k", cluster: 4096 }],
  vhdx: [{ options: "block_size=1M", cluster: 1 << 20 }],
  vpc: [{ cluster: 2 << 20 }, { options: "subformat=fixed", cluster: 512 }],
  vmdk: [{ cluster: 65536 }, { options: "subformat=streamOptimized", cluster: 65536 }],
  vdi: [{ cluster: 1 << 20 }, { options: "static=on", cluster: 1 << 20 }],
  parallels: [{ options: "cluster_size=64k", cluster: 65536 }],
  gow1: [{ cluster: 4096 }],
  gow2: [{ cluster: 4096 }],
  fvd: [{ cluster: 65536 }],
};

const SIZE = 3 << 20;
/** Operations that walk the whole virtual disk run only up to this size (a mutated size field
 * can claim petabytes, which qemu-img too would take days to read). */
const WALK_LIMIT = 64 << 20;

function emit(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

let current: { format: string; index: number; seed: number } | undefined;
const unobserved = (kind: string) => (e: unknown): void => {
  emit({ bad: true, ...current, op: kind, error: describe(e) });
};
process.on("unhandledRejection", unobserved("unhandledRejection"));
process.on("uncaughtException", unobserved("uncaughtException"));

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${(e.stack ?? "").split("\n").slice(1, 6).join("\n")}`;
  return String(e);
}

async function baseImage(format: string, options: string | undefined): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  const img = await createImageOn(mem, { format, size: SIZE, ...(options ? { options } : {}) });
  const fill = (n: number, seed: number) => new Uint8Array(n).map((_, i) => ((i * 131 + seed * 17) & 0xff) || 1);
  await img.write(0, fill(70_000, 1));
  await img.write(SIZE / 2 + 4096, fill(20_000, 2));
  await img.write(SIZE - 8192, fill(8192, 3));
  await img.close();
  return mem.bytes().slice();
}

/** File ranges of the top image that hold guest data (not mutated on purpose: not metadata). */
async function dataRanges(format: string, bytes: Uint8Array): Promise<Array<[number, number]>> {
  const dev = await openImageOn(new MemoryBackend(bytes.slice()), { format, readOnly: true });
  const out: Array<[number, number]> = [];
  for await (const e of dev.extents()) {
    if (e.data && e.fileOffset !== undefined && e.depth === 0) out.push([e.fileOffset, e.fileOffset + e.length]);
  }
  await dev.close();
  return out;
}

/** Runs one op; an ImageError is a fine answer, anything else is reported. */
async function op(name: string, fn: () => Promise<unknown>, mutation: string[]): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    if (!isImageError(e)) emit({ bad: true, ...current, op: name, error: describe(e), mutation });
    return false;
  }
}

/** Runs every operation on one mutant; true when it opened. */
async function runMutant(format: string, bytes: Uint8Array, mutation: string[]): Promise<boolean> {
  let dev: BlockDevice | undefined;
  if (!(await op("open", async () => (dev = await openImageOn(new MemoryBackend(bytes, { readOnly: true }), { format, readOnly: true })), mutation))) {
    return false;
  }
  const d = dev!;
  try {
    await op("info", () => imageInfo(d), mutation);
    await op("check", () => checkImage(d), mutation);
    const walk = Math.min(d.size, WALK_LIMIT);
    await op("map", async () => {
      for await (const _ of mapImage(d, { start: 0, length: walk })) void _;
    }, mutation);
    if (d.size <= WALK_LIMIT) {
      await op("convert", async () => {
        const target = await createImageOn(new MemoryBackend(), { format: "raw", size: d.size });
        try {
          await convertImage(d, target);
        } finally {
          await target.close();
        }
      }, mutation);
    }
    await op("read", async () => {
      const chunk = 1 << 20;
      for (let pos = 0; pos < walk; pos += chunk) await d.read(pos, Math.min(chunk, walk - pos));
    }, mutation);
  } finally {
    await op("close", () => d.close(), mutation);
  }
  return true;
}

/**
 * The write path on a copy: writes, zeroes and a discard at a few places, a flush, a repairing
 * check and a reopen. Corruption met while writing must be an ImageError too.
 */
async function runWrites(format: string, bytes: Uint8Array, mutation: string[]): Promise<void> {
  let dev: BlockDevice | undefined;
  const mem = new MemoryBackend(bytes.slice(), { maxSize: 256 << 20 });
  if (!(await op("open-rw", async () => (dev = await openImageOn(mem, { format })), mutation))) return;
  const d = dev!;
  try {
    const n = Math.min(d.size, WALK_LIMIT);
    const data = new Uint8Array(65536).fill(0x5c);
    for (const at of [0, Math.floor(n / 3), n - 4096]) {
      const off = Math.max(0, Math.min(at, n - 1));
      await op("write", () => d.write(off, data.subarray(0, Math.min(data.length, d.size - off))), mutation);
    }
    await op("write-zeroes", () => d.writeZeroes(0, Math.min(8192, d.size)), mutation);
    await op("discard", () => d.discard(0, Math.min(1 << 20, d.size)), mutation);
    await op("flush", () => d.flush(), mutation);
    await op("repair", () => checkImage(d, "all"), mutation);
  } finally {
    await op("close-rw", () => d.close(), mutation);
  }
  let again: BlockDevice | undefined;
  if (!(await op("reopen", async () => (again = await openImageOn(new MemoryBackend(mem.bytes()), { format, readOnly: true })), mutation))) return;
  await op("check-after", () => checkImage(again!), mutation);
  await op("close-again", () => again!.close(), mutation);
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as Job;
  for (const format of job.formats) {
    const bases: Array<{ bytes: Uint8Array; sites: MutationSites; cluster: number }> = [];
    const sample = job.samples?.[format];
    if (sample) {
      const r = spawnSync("bzip2", ["-dc", sample], { maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`bzip2 -dc ${sample} failed`);
      const bytes = new Uint8Array(r.stdout);
      bases.push({ bytes, sites: findSites(bytes, await dataRanges(format, bytes)), cluster: 4096 });
    }
    for (const b of sample ? [] : (BASES[format] ?? [{ cluster: 4096 }])) {
      const bytes = await baseImage(format, b.options);
      bases.push({ bytes, sites: findSites(bytes, await dataRanges(format, bytes)), cluster: b.cluster });
    }
    for (const seed of job.seeds) {
      const r = rng(seed ^ hash(format));
      for (let index = 0; index < job.count; index++) {
        const base = bases[index % bases.length];
        const mutant = mutate(base.bytes, base.sites, r, base.cluster);
        const mutation = mutant.done.map((m) => m.what);
        current = { format, index, seed };
        emit({ start: true, format, index, seed, mutation });
        const t0 = performance.now();
        let opened = false;
        try {
          opened = await runMutant(format, mutant.bytes, mutation);
          if (opened && index % 3 === 0) await runWrites(format, mutant.bytes, mutation);
        } finally {
          mutant.undo();
        }
        const ms = Math.round(performance.now() - t0);
        emit({ end: true, format, index, seed, opened, ms, rss: process.memoryUsage().rss, peakRss: process.resourceUsage().maxRSS * 1024 });
      }
    }
  }
  emit({ finished: true });
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

main().catch((e: unknown) => {
  emit({ bad: true, ...current, op: "harness", error: describe(e) });
  emit({ finished: true });
});
