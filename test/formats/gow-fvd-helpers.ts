/**
 * Test helpers for the GOW and FVD suites: a seeded RNG, a crashable in-memory backend (writes
 * since the last flush may or may not survive a power cut, sector by sector), and a crash
 * checker that compares a reopened image with what the workload may have left.
 */
import { expect } from "vitest";
import type { IoBackend, IoCapabilities } from "../../src/io/backend.js";
import { MemoryBackend } from "../../src/io/memory.js";
import { firstDifference as diffAt, rng as seeded } from "./image-model.js";

/** The shared seeded RNG and fast byte comparison of the format tests, under this suite's names. */
export { diffAt, seeded };

/** Bytes that differ per position and seed, never all zero. */
export function fillPattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((i * 131 + seed * 17) ^ (i >> 9)) & 0xff || 1;
  return out;
}

/** The error a cut backend throws. */
export class PowerCut extends Error {
  constructor() {
    super("power cut");
    this.name = "PowerCut";
  }
}

type Op = { kind: "write"; offset: number; data: Uint8Array } | { kind: "truncate"; size: number };

/**
 * A memory file whose durable state is what the last completed `flush` saw. After `cutAfter`
 * more operations every call throws {@link PowerCut}; {@link CrashableBackend.crashImage}
 * then gives a file as a power cut could leave it: the durable state plus a random subset of
 * the later writes, each 512-byte sector kept or lost on its own, truncates kept or lost.
 */
export class CrashableBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities = { writable: true, sparse: true };
  private readonly mem: MemoryBackend;
  private durable: Uint8Array;
  private ops: Op[] = [];
  private budget = Infinity;
  flushes = 0;

  constructor(name = "crashable") {
    this.name = name;
    this.mem = new MemoryBackend(new Uint8Array(0), { name });
    this.durable = new Uint8Array(0);
  }

  /** Every call after `n` more operations fails. */
  cutAfter(n: number): void {
    this.budget = n;
  }

  private tick(): void {
    if (this.budget <= 0) throw new PowerCut();
    this.budget--;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.tick();
    return this.mem.read(offset, into);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.tick();
    await this.mem.write(offset, data);
    this.ops.push({ kind: "write", offset, data: data.slice() });
  }

  async truncate(size: number): Promise<void> {
    this.tick();
    await this.mem.truncate(size);
    this.ops.push({ kind: "truncate", size });
  }

  async flush(): Promise<void> {
    this.tick();
    this.durable = this.mem.bytes().slice();
    this.ops = [];
    this.flushes++;
  }

  async size(): Promise<number> {
    this.tick();
    return this.mem.size();
  }

  async close(): Promise<void> {}

  /** The current contents (everything written, as if nothing were lost). */
  bytes(): Uint8Array {
    return this.mem.bytes().slice();
  }

  /** A file as a power cut now could leave it. */
  async crashImage(r: () => number): Promise<Uint8Array> {
    const out = new MemoryBackend(this.durable.slice());
    for (const op of this.ops) {
      if (op.kind === "truncate") {
        if (r() < 0.5) await out.truncate(op.size);
        continue;
      }
      for (let at = 0; at < op.data.length; at += 512) {
        if (r() < 0.5) await out.write(op.offset + at, op.data.subarray(at, Math.min(op.data.length, at + 512)));
      }
    }
    return out.bytes().slice();
  }
}

/** A guest write of the workload, kept as a candidate until a flush makes it durable. */
export interface GuestWrite {
  offset: number;
  data: Uint8Array;
}

/**
 * Checks `read` (the reopened image's contents) sector by sector: each must equal the durable
 * model or the data of some write issued after the last completed flush.
 */
export function expectCrashConsistent(read: Uint8Array, durable: Uint8Array, pending: GuestWrite[], label: string): void {
  for (let s = 0; s < read.length; s += 512) {
    const got = read.subarray(s, s + 512);
    if (equal(got, durable.subarray(s, s + 512))) continue;
    const ok = pending.some((w) => w.offset <= s && w.offset + w.data.length >= s + 512 && equal(got, w.data.subarray(s - w.offset, s - w.offset + 512)));
    if (!ok) expect.fail(`${label}: sector ${s / 512} holds data that was neither flushed nor written since the last flush`);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}


/** One crash-consistency scenario: how to make the image and how to reopen a crashed copy. */
export interface CrashScenario {
  label: string;
  /** Virtual size of the image the scenario makes. */
  size: number;
  /** Guest contents before the workload (a base image's data; zeros when absent). */
  initial?: Uint8Array;
  /** Creates the image on `io` and returns it open read-write. */
  make(io: IoBackend): Promise<import("../../src/index.js").BlockDevice>;
  /** Opens a crashed copy of the file. */
  reopen(bytes: Uint8Array, readOnly: boolean): Promise<import("../../src/index.js").BlockDevice>;
}

/** Options of {@link runCrashTrials}. */
export interface CrashTrialOptions {
  trials: number;
  /** Guest operations per workload. */
  ops: number;
  seed: number;
  /** Largest write in bytes (default 192 KiB). */
  maxLength?: number;
  /** The cut falls after a uniform number of backend operations in [0, cutRange) (default 4 × ops). */
  cutRange?: number;
}

/**
 * Runs `trials` random workloads (aligned writes, zero writes, flushes), each cut after a random
 * number of backend operations; reopens the crash image read-only and read-write and requires
 * that both read the same, that every sector is flushed data or data written after the last
 * flush, and that check finds no corruption.
 */
export async function runCrashTrials(s: CrashScenario, o: CrashTrialOptions): Promise<void> {
  const r = seeded(o.seed);
  const { trials, ops } = o;
  const maxLen = o.maxLength ?? 3 * 65536;
  for (let t = 0; t < trials; t++) {
    const io = new CrashableBackend(`${s.label}-${t}`);
    const img = await s.make(io);
    const durable = s.initial ? s.initial.slice() : new Uint8Array(s.size);
    const current = durable.slice();
    let pending: GuestWrite[] = [];
    io.cutAfter(Math.floor(r() * (o.cutRange ?? ops * 4)));
    try {
      for (let i = 0; i < ops; i++) {
        const sectors = Math.max(1, Math.floor((r() * maxLen) / 512));
        const off = Math.floor(r() * (s.size / 512 - sectors)) * 512;
        const roll = r();
        if (roll < 0.15) {
          await img.flush();
          durable.set(current);
          pending = [];
          continue;
        }
        const data = roll < 0.3 ? new Uint8Array(sectors * 512) : fillPattern(sectors * 512, t * 100 + i + 1);
        pending.push({ offset: off, data });
        if (roll < 0.3) await img.writeZeroes(off, data.length);
        else await img.write(off, data);
        current.set(data, off);
      }
      await img.flush();
      durable.set(current);
      pending = [];
    } catch (e) {
      if (!(e instanceof PowerCut)) throw e;
    }
    const crashed = await io.crashImage(r);
    const label = `${s.label} trial ${t}`;
    const ro = await s.reopen(crashed.slice(), true);
    const roData = await ro.read(0, s.size);
    await ro.close();
    const rw = await s.reopen(crashed.slice(), false);
    const rwData = await rw.read(0, s.size);
    expect(diffAt(roData, rwData), `${label}: read-only and read-write opens differ`).toBe(-1);
    expectCrashConsistent(rwData, durable, pending, label);
    const c = await rw.check();
    expect(c.corruptions, `${label}: ${c.messages.join("; ")}`).toBe(0);
    // Life goes on: small writes after the crash must not bring back data of lost writes.
    const after = rwData.slice();
    for (let i = 0; i < 6; i++) {
      const len = 1 + Math.floor(r() * 3000);
      const off = Math.floor(r() * (s.size - len));
      const d = fillPattern(len, 7000 + i);
      await rw.write(off, d);
      after.set(d, off);
    }
    expect(diffAt(await rw.read(0, s.size), after), `${label}: writes after the crash`).toBe(-1);
    await rw.close();
  }
}
