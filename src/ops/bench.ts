/**
 * `qemu-img bench`: a simple I/O benchmark on an open image — `count` requests of `size` bytes,
 * `depth` in flight, starting at `offset` and `step` bytes apart (wrapping at the end of the
 * disk), reads or pattern writes, with an optional flush every `flushInterval` requests.
 * @module
 */
import { throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";

/** Options of {@link benchImage}. qemu-img bench's defaults. */
export interface BenchOptions extends OperationOptions {
  /** Requests to send. Default 75000. */
  count?: number;
  /** Requests in flight. Default 64. */
  depth?: number;
  /** Bytes per request. Default 4096. */
  size?: number;
  /** Bytes between the starts of consecutive requests. Default `size`. */
  step?: number;
  /** Guest offset of the first request. Default 0. */
  offset?: number;
  /** Write (the byte `pattern`) instead of reading. */
  write?: boolean;
  /** The byte writes fill their buffer with. Default 0. */
  pattern?: number;
  /** Writes only: flush after every this many requests complete. */
  flushInterval?: number;
  /** With `flushInterval`: flush without waiting for the requests in flight first. */
  noDrain?: boolean;
  /** The clock (ms); default `performance.now`. */
  now?: () => number;
}

/** What {@link benchImage} measured. */
export interface BenchResult {
  /** Wall time of the run in seconds. */
  seconds: number;
  requests: number;
  flushes: number;
}

/** The resolved parameters (defaults filled in), for the report line. */
export function benchParameters(options: BenchOptions) {
  const size = options.size ?? 4096;
  return {
    count: options.count ?? 75000,
    depth: options.depth ?? 64,
    size,
    step: options.step ?? size,
    offset: options.offset ?? 0,
    write: !!options.write,
    pattern: options.pattern ?? 0,
    flushInterval: options.flushInterval,
    noDrain: !!options.noDrain,
  };
}

/**
 * Runs the benchmark. Throws `RangeError` for bad parameters (a flush interval smaller than the
 * depth or on a read run, as qemu-img) and rejects with the first failed request's error.
 */
export async function benchImage(device: BlockDevice, options: BenchOptions = {}): Promise<BenchResult> {
  const p = benchParameters(options);
  for (const [name, v] of [["count", p.count], ["depth", p.depth], ["size", p.size], ["step", p.step], ["offset", p.offset]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Invalid ${name} ${v}`);
  }
  if (p.depth < 1) throw new RangeError("Invalid queue depth specified");
  if (p.flushInterval !== undefined) {
    if (!p.write) throw new RangeError("--flush-interval is only available in write tests");
    if (p.flushInterval < p.depth) throw new RangeError("Flush interval can't be smaller than depth");
  }
  const now = options.now ?? (() => performance.now());
  const buf = new Uint8Array(p.size).fill(p.pattern & 0xff);
  const scratch = p.write ? undefined : Array.from({ length: Math.min(p.depth, Math.max(1, p.count)) }, () => new Uint8Array(p.size));
  const imageSize = device.size;
  let nextOffset = p.offset;
  let issued = 0;
  let completed = 0;
  let flushes = 0;
  let sinceFlush = 0;
  let failure: { error: unknown } | undefined;
  const inflight = new Set<Promise<void>>();
  const start = now();
  const one = async (offset: number, slot: number): Promise<void> => {
    if (p.write) await device.write(offset, buf);
    else await device.readInto(offset, scratch![slot]);
    completed++;
  };
  try {
    while (issued < p.count && !failure) {
      throwIfAborted(options.signal);
      while (inflight.size >= p.depth) await Promise.race(inflight);
      if (failure) break;
      const offset = nextOffset;
      nextOffset = imageSize > 0 ? (nextOffset + p.step) % imageSize : 0;
      const req = one(offset, issued % p.depth).catch((e) => {
        failure ??= { error: e };
      });
      const tracked = req.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      issued++;
      sinceFlush++;
      if (p.flushInterval !== undefined && sinceFlush >= p.flushInterval) {
        if (!p.noDrain) await Promise.all(inflight);
        await device.flush();
        flushes++;
        sinceFlush = 0;
      }
      options.onProgress?.({ done: issued, total: p.count });
    }
  } finally {
    // An abort or a failed flush leaves the loop early: no request outlives the call.
    await Promise.allSettled(inflight);
  }
  if (failure) throw failure.error;
  const seconds = (now() - start) / 1000;
  return { seconds, requests: completed, flushes };
}
