/**
 * A reusable crash-consistency harness for any writable format.
 *
 * 1. Creates an image in memory and closes it (the base state).
 * 2. Reopens it on a {@link FaultBackend}, runs a seeded random workload (writes, zero
 *    writes, discards, compressed writes) with periodic flushes, keeping a byte model.
 * 3. For every cut point of the recorded write stream (sampled down to `maxCuts`), optionally
 *    with the last write torn at a sector boundary: rebuilds the file, opens it writable (so
 *    formats may replay journals / rebuild refcounts), runs `check` (no corruptions, leaks
 *    allowed) and verifies that every byte written before the last completed flush, and not
 *    touched by an operation after it, reads back as the model had it at that flush.
 */
import { expect } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn, type ImageDevice } from "../../src/index.js";

/** Kinds of guest operation the workload may issue. */
export type CrashOp = "write" | "zero" | "discard" | "compressed";

/** Options of {@link runCrashHarness}. */
export interface CrashHarnessOptions {
  format: string;
  /** Create options (`-o` string). */
  options?: string;
  size: number;
  seed: number;
  /** Guest operations in the workload. Default 30. */
  operations?: number;
  /** Flush after about every this many operations. Default 5. */
  flushEvery?: number;
  ops?: CrashOp[];
  /** Largest single operation in bytes. Default 3 × 64 KiB. */
  maxLength?: number;
  /** Most cut points examined (evenly sampled, always including the flush points). Default 200. */
  maxCuts?: number;
  /** Also examine torn versions of multi-sector writes. Default true. */
  tear?: boolean;
  /** Bytes of a discarded range that read back as the model says: zeros (default) or none. */
  discardReadsZero?: boolean;
}

/** What the harness examined, for assertions on coverage. */
export interface CrashHarnessReport {
  mutations: number;
  flushes: number;
  cutsChecked: number;
  tornChecked: number;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Epoch {
  /** Mutation count when the flush completed. */
  at: number;
  /** Model at that flush. */
  model: Uint8Array;
  /** Guest ranges touched by operations after this flush and before the next one. */
  unstable: Array<[number, number]>;
}

/** Runs the harness; throws (vitest assertions) on the first inconsistency found. */
export async function runCrashHarness(o: CrashHarnessOptions): Promise<CrashHarnessReport> {
  const r = rng(o.seed);
  const baseMem = new MemoryBackend();
  const created = await createImageOn(baseMem, { format: o.format, size: o.size, options: o.options ?? "" });
  await created.close();
  const base = baseMem.bytes().slice();
  const fault = FaultBackend.over(base);
  const img = await openImageOn(fault, { format: o.format });
  const size = img.size;
  const unit = img.capabilities.compressionUnit || img.capabilities.allocationUnit;
  const model = new Uint8Array(size);
  const ops = o.ops ?? ["write", "zero", "discard"];
  const maxLen = o.maxLength ?? 3 * 65536;
  const epochs: Epoch[] = [{ at: 0, model: model.slice(), unstable: [] }];
  const count = o.operations ?? 30;
  for (let i = 0; i < count; i++) {
    const kind = ops[Math.floor(r() * ops.length)];
    let off = Math.floor(r() * size);
    let len = Math.min(size - off, 1 + Math.floor(r() * maxLen));
    epochs[epochs.length - 1].unstable.push([off, off + len]);
    if (kind === "write") {
      const d = new Uint8Array(len).fill(1 + Math.floor(r() * 255));
      d[0] = i & 0xff;
      await img.write(off, d);
      model.set(d, off);
    } else if (kind === "zero") {
      await img.writeZeroes(off, len, { unmap: r() < 0.5 });
      model.fill(0, off, off + len);
    } else if (kind === "discard") {
      // Only whole clusters are released, and only those are known to read back as zeros.
      await img.discard(off, len);
      const info = await img.info();
      const cs = info.clusterSize ?? unit;
      const s = Math.ceil(off / cs) * cs;
      const e = off + len === size ? size : Math.floor((off + len) / cs) * cs;
      if (e > s && o.discardReadsZero !== false) model.fill(0, s, e);
    } else {
      off = Math.floor(off / unit) * unit;
      len = Math.min(size - off, unit);
      const d = new Uint8Array(len).fill(0x40 + (i & 0x3f));
      await img.writeCompressed(off, d);
      model.set(d, off);
      epochs[epochs.length - 1].unstable.push([off, off + len]);
    }
    if ((i + 1) % (o.flushEvery ?? 5) === 0) {
      await img.flush();
      epochs.push({ at: fault.mutationCount, model: model.slice(), unstable: [] });
    }
  }
  await img.close();
  const total = fault.mutationCount;
  // Cut points: every flush point plus an even sample of the rest.
  const maxCuts = o.maxCuts ?? 200;
  const cuts = new Set<number>(epochs.map((e) => e.at));
  const step = Math.max(1, Math.floor(total / maxCuts));
  for (let n = 0; n <= total; n += step) cuts.add(n);
  cuts.add(total);
  let tornChecked = 0;
  let cutsChecked = 0;
  for (const n of [...cuts].sort((a, b) => a - b)) {
    const variants: Array<number | undefined> = [undefined];
    const next = fault.mutation(n);
    if (o.tear !== false && next?.kind === "write" && next.data.length > 512) {
      variants.push(Math.floor(next.data.length / 2 / 512) * 512 || 512);
    }
    for (const tear of variants) {
      const mem = await fault.replay({ ops: n, tear });
      await verifyState(mem, o.format, epochs, n, tear);
      cutsChecked++;
      if (tear !== undefined) tornChecked++;
    }
  }
  return { mutations: total, flushes: epochs.length - 1, cutsChecked, tornChecked };
}

async function verifyState(mem: MemoryBackend, format: string, epochs: Epoch[], cut: number, tear: number | undefined): Promise<void> {
  const where = `crash after ${cut} writes${tear !== undefined ? ` (next torn at ${tear} bytes)` : ""}`;
  let img: ImageDevice;
  try {
    img = await openImageOn(mem, { format });
  } catch (e) {
    throw new Error(`${where}: the image does not open: ${(e as Error).message}`);
  }
  try {
    const c = await img.check();
    expect(c.corruptions, `${where}: check found corruptions:\n${c.messages.join("\n")}`).toBe(0);
    expect(c.checkErrors, `${where}: check errors:\n${c.messages.join("\n")}`).toBe(0);
    let e = epochs[0];
    for (const x of epochs) if (x.at <= cut) e = x;
    const got = await img.read(0, img.size);
    const stable = new Uint8Array(img.size).fill(1);
    for (const [s, end] of e.unstable) stable.fill(0, s, end);
    for (let i = 0; i < got.length; i++) {
      if (stable[i] && got[i] !== e.model[i]) {
        throw new Error(`${where}: byte ${i} reads ${got[i]}, flushed data was ${e.model[i]}`);
      }
    }
  } finally {
    await img.close();
  }
}
