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
 * 4. The volatile-cache model: a disk's write cache may keep or lose any subset of the writes
 *    issued since the last completed flush, in any order. For a seeded sample of such subsets
 *    (every write dropped alone, every write kept alone, random subsets, some with a kept write
 *    torn) it rebuilds the file, opens it writable, and when `check` finds corruptions runs
 *    the format's own repair (`check -r all`): what remains must be 0 corruptions, and the
 *    flushed data must read back as in step 3.
 */
import { expect } from "vitest";
import { FaultBackend, type FaultSubsetCut } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn, type ImageDevice } from "../../src/index.js";
import { rng } from "./random.js";

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
  /**
   * In-order cuts may leave corruptions that the format's `check -r all` repairs (VDI, whose
   * interrupted allocation leaves a block count qemu-img calls a corruption). Default false:
   * an in-order cut must check clean as it is.
   */
  repairInOrder?: boolean;
  /** Most volatile-cache crash images examined (sampled from the candidates). Default 30; 0: none. */
  volatile?: number;
  /**
   * Record volatile-cache failures in the report instead of throwing (for measurements).
   * In-order cuts still throw.
   */
  collect?: boolean;
}

/** What the harness examined, for assertions on coverage. */
export interface CrashHarnessReport {
  mutations: number;
  flushes: number;
  cutsChecked: number;
  tornChecked: number;
  /** Volatile-cache images examined. */
  volatileChecked: number;
  /** … of which `check` found corruptions that the repair then fixed. */
  volatileRepaired: number;
  /** … of which failed: did not open, stayed corrupt after repair, or lost flushed data. */
  volatileFailed: number;
  /** One line per failure (only with `collect`). */
  failures: string[];
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
  if (process.env.CRASH_HARNESS_LOG) {
    let n = 0;
    for (const op of fault.log) {
      if (op.kind === "flush") console.log("  flush");
      else console.log(`  #${n++} ${op.kind} ${op.kind === "write" ? `${op.offset} +${op.data.length} [${op.data.subarray(0, 8).join(",")}]` : op.size}`);
    }
  }
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
      await verifyState(mem, o.format, epochs, n, tear, o.repairInOrder ?? false);
      cutsChecked++;
      if (tear !== undefined) tornChecked++;
    }
  }
  const rep: CrashHarnessReport = {
    mutations: total, flushes: epochs.length - 1, cutsChecked, tornChecked,
    volatileChecked: 0, volatileRepaired: 0, volatileFailed: 0, failures: [],
  };
  for (const cut of volatileCuts(fault, o.volatile ?? 30, rng((o.seed ^ 0x5eed1e) >>> 0))) {
    const mem = await fault.replaySubset(cut);
    rep.volatileChecked++;
    try {
      if (await verifyVolatile(mem, o.format, epochs, cut)) rep.volatileRepaired++;
    } catch (e) {
      if (!o.collect) throw e;
      rep.volatileFailed++;
      rep.failures.push((e as Error).message.split("\n").slice(0, 3).join(" | "));
    }
  }
  return rep;
}

/**
 * Candidate volatile-cache crashes, sampled down to `budget`: for each run of mutations between
 * two completed flushes, each one dropped alone, each one kept alone, and random subsets (one
 * in three with a kept multi-sector write torn at a sector boundary).
 */
function volatileCuts(fault: FaultBackend, budget: number, r: () => number): FaultSubsetCut[] {
  if (budget <= 0) return [];
  const total = fault.mutationCount;
  const bounds = [...new Set([0, ...fault.flushPoints(), total])].sort((a, b) => a - b);
  const out: FaultSubsetCut[] = [];
  const seen = new Set<string>();
  const add = (durable: number, keep: number[], tornIndex?: number, tear?: number) => {
    const key = `${durable}:${keep.join(",")}:${tornIndex ?? ""}:${tear ?? ""}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ durable, keep: new Set(keep), tornIndex, tear });
  };
  for (let b = 0; b + 1 < bounds.length; b++) {
    const d = bounds[b];
    const idx: number[] = [];
    for (let i = d; i < bounds[b + 1]; i++) idx.push(i);
    if (idx.length < 2) continue; // every subset of 0 or 1 mutation is an in-order cut
    for (const i of idx) {
      add(d, idx.filter((j) => j !== i));
      add(d, [i]);
    }
    for (let k = 0; k < 3; k++) {
      const p = r();
      const keep = idx.filter(() => r() < p);
      const big = keep.filter((i) => {
        const m = fault.mutation(i);
        return m?.kind === "write" && m.data.length > 512;
      });
      if (k === 2 && big.length > 0) {
        const t = big[Math.floor(r() * big.length)];
        const m = fault.mutation(t) as { data: Uint8Array };
        add(d, keep, t, Math.max(512, Math.floor((r() * m.data.length) / 512) * 512));
      } else {
        add(d, keep);
      }
    }
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out.slice(0, budget);
}

/** Checks one volatile-cache crash image; true when the repair had to fix corruptions. */
async function verifyVolatile(mem: MemoryBackend, format: string, epochs: Epoch[], cut: FaultSubsetCut): Promise<boolean> {
  const kept = [...cut.keep].sort((a, b) => a - b);
  const torn = cut.tornIndex !== undefined ? ` (${cut.tornIndex} torn at ${cut.tear} bytes)` : "";
  const where = `volatile crash: durable ${cut.durable}, kept [${kept.join(",")}]${torn}`;
  let img: ImageDevice;
  try {
    img = await openImageOn(mem, { format });
  } catch (e) {
    throw new Error(`${where}: the image does not open: ${(e as Error).message}`);
  }
  try {
    let c = await img.check();
    const repaired = c.corruptions > 0 || c.checkErrors > 0;
    if (repaired) {
      const first = c.messages.join("\n");
      try {
        await img.check("all");
        c = await img.check();
      } catch (e) {
        throw new Error(`${where}: repair failed: ${(e as Error).message}\n${first}`);
      }
      expect(c.corruptions, `${where}: corruptions after check -r all:\n${c.messages.join("\n")}\nbefore:\n${first}`).toBe(0);
      expect(c.checkErrors, `${where}: check errors after check -r all:\n${c.messages.join("\n")}`).toBe(0);
    }
    await expectFlushedData(img, epochs, cut.durable, where);
    return repaired;
  } finally {
    await img.close();
  }
}

/** Every byte flushed by the last epoch at or before `cut`, and not touched since, reads back. */
async function expectFlushedData(img: ImageDevice, epochs: Epoch[], cut: number, where: string): Promise<void> {
  let e = epochs[0];
  for (const x of epochs) if (x.at <= cut) e = x;
  const stable = new Uint8Array(img.size).fill(1);
  for (const [s, end] of e.unstable) stable.fill(0, s, end);
  const chunk = 1 << 16;
  for (let at = 0; at < img.size; at += chunk) {
    const len = Math.min(chunk, img.size - at);
    let got: Uint8Array;
    try {
      got = await img.read(at, len);
    } catch (err) {
      // Only data written after the last flush may fail to read (a compressed cluster whose
      // bytes the cache lost); the sectors that fail must all be unstable.
      got = new Uint8Array(len);
      for (let s = 0; s < len; s += 512) {
        const n = Math.min(512, len - s);
        try {
          got.set(await img.read(at + s, n), s);
        } catch {
          if (stable.subarray(at + s, at + s + n).some((x) => x)) {
            throw new Error(`${where}: flushed data at ${at + s} does not read: ${(err as Error).message}`);
          }
          got.set(e.model.subarray(at + s, at + s + n), s);
        }
      }
    }
    for (let i = 0; i < len; i++) {
      if (stable[at + i] && got[i] !== e.model[at + i]) {
        throw new Error(`${where}: byte ${at + i} reads ${got[i]}, flushed data was ${e.model[at + i]}`);
      }
    }
  }
}

async function verifyState(
  mem: MemoryBackend,
  format: string,
  epochs: Epoch[],
  cut: number,
  tear: number | undefined,
  repair: boolean,
): Promise<void> {
  const where = `crash after ${cut} writes${tear !== undefined ? ` (next torn at ${tear} bytes)` : ""}`;
  let img: ImageDevice;
  try {
    img = await openImageOn(mem, { format });
  } catch (e) {
    throw new Error(`${where}: the image does not open: ${(e as Error).message}`);
  }
  try {
    let c = await img.check();
    if (repair && c.corruptions > 0) c = await img.check("all");
    expect(c.corruptions, `${where}: check found corruptions:\n${c.messages.join("\n")}`).toBe(0);
    expect(c.checkErrors, `${where}: check errors:\n${c.messages.join("\n")}`).toBe(0);
    await expectFlushedData(img, epochs, cut, where);
  } finally {
    await img.close();
  }
}
