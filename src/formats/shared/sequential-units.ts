/**
 * Helpers for sequential writers: walking the source's data ranges in whole allocation units,
 * and reading them in large requests.
 * @module
 */
import type { SequentialDataRange, SequentialSource, SequentialWriteContext } from "../../core/sequential-writer.js";

/** A run of whole units `[first, first + count)` that hold some data. */
export interface UnitRun {
  first: number;
  count: number;
}

/**
 * The units of `unitBytes` that `ranges` touch, as merged runs in order. The last unit may
 * pass the end of the disk.
 */
export function unitRuns(ranges: readonly SequentialDataRange[], unitBytes: number): UnitRun[] {
  const out: UnitRun[] = [];
  for (const r of ranges) {
    if (r.length <= 0) continue;
    const first = Math.floor(r.offset / unitBytes);
    const end = Math.ceil((r.offset + r.length) / unitBytes);
    const last = out[out.length - 1];
    if (last && last.first + last.count >= first) last.count = Math.max(last.count, end - last.first);
    else out.push({ first, count: end - first });
  }
  return out;
}

/** Total units of `runs`. */
export function unitCount(runs: readonly UnitRun[]): number {
  let n = 0;
  for (const r of runs) n += r.count;
  return n;
}

/** Bytes read per request by {@link forEachUnit}. */
const READ_BYTES = 4 << 20;

/**
 * Reads every unit of `runs` in order, several per request, and calls `fn` with each unit's
 * bytes (a view of a fresh buffer per request, never reused: the callee may keep it). A unit
 * at the end of the disk is zero-padded to `unitBytes`. `progress` gets the guest bytes read.
 */
export async function forEachUnit(
  source: SequentialSource,
  runs: readonly UnitRun[],
  unitBytes: number,
  fn: (unitIndex: number, bytes: Uint8Array) => Promise<void> | void,
  progress: (bytes: number) => void,
): Promise<void> {
  const perRead = Math.max(1, Math.floor(READ_BYTES / unitBytes));
  for (const run of runs) {
    for (let u = run.first; u < run.first + run.count; u += perRead) {
      const n = Math.min(perRead, run.first + run.count - u);
      const buf = new Uint8Array(n * unitBytes);
      const start = u * unitBytes;
      const len = Math.min(buf.length, source.size - start);
      await source.readInto(start, buf.subarray(0, len));
      progress(len);
      for (let i = 0; i < n; i++) await fn(u + i, buf.subarray(i * unitBytes, (i + 1) * unitBytes));
    }
  }
}

/** Bytes per read and per zero chunk. */
const RAW_CHUNK = 4 << 20;
/** Zeros shared by every hole (never written to, so the sink may keep views of it). */
let zeros: Uint8Array | undefined;

/** Appends `length` zero bytes. */
export async function writeZeroBytes(ctx: SequentialWriteContext, length: number): Promise<void> {
  zeros ??= new Uint8Array(RAW_CHUNK);
  for (let left = length; left > 0; left -= RAW_CHUNK) {
    await ctx.output.write(zeros.subarray(0, Math.min(RAW_CHUNK, left)));
  }
}

/**
 * Appends the guest bytes `[0, size)` of the source (`size` may pass the source's end: zeros):
 * data read, holes as zeros. Progress counts the data bytes read.
 */
export async function writeRawDisk(ctx: SequentialWriteContext, size: number): Promise<void> {
  let pos = 0;
  for (const r of ctx.source.dataRanges) {
    if (r.offset > pos) await writeZeroBytes(ctx, r.offset - pos);
    for (let at = r.offset; at < r.offset + r.length; at += RAW_CHUNK) {
      const buf = new Uint8Array(Math.min(RAW_CHUNK, r.offset + r.length - at));
      await ctx.source.readInto(at, buf);
      await ctx.output.write(buf);
      ctx.progress(buf.length);
    }
    pos = r.offset + r.length;
  }
  if (size > pos) await writeZeroBytes(ctx, size - pos);
}


/** Units transformed at once by {@link forEachUnitTransformed} (compression runs off-thread in Node). */
const TRANSFORM_WINDOW = 8;

/**
 * Like {@link forEachUnit}, with `transform` (compression) run on up to 8 units at once ahead of
 * `consume`, which still sees every unit in order. A rejected transform rejects the walk.
 */
export async function forEachUnitTransformed<T>(
  source: SequentialSource,
  runs: readonly UnitRun[],
  unitBytes: number,
  transform: (unitIndex: number, bytes: Uint8Array) => Promise<T>,
  consume: (unitIndex: number, bytes: Uint8Array, result: T) => Promise<void> | void,
  progress: (bytes: number) => void,
): Promise<void> {
  const queue: Array<{ unit: number; bytes: Uint8Array; result: Promise<T> }> = [];
  const drainOne = async (): Promise<void> => {
    const head = queue.shift()!;
    await consume(head.unit, head.bytes, await head.result);
  };
  try {
    await forEachUnit(source, runs, unitBytes, async (unit, bytes) => {
      const result = transform(unit, bytes);
      // Awaited in order below; a rejection before then must not be reported as unhandled.
      result.catch(() => {});
      queue.push({ unit, bytes, result });
      while (queue.length >= TRANSFORM_WINDOW) await drainOne();
    }, progress);
    while (queue.length) await drainOne();
  } finally {
    queue.length = 0;
  }
}
