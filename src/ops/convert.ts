/**
 * Copying one virtual disk into another (`vdisk convert`), format-neutral: the source's
 * allocation map decides what is read at all, a zero scan of what is read keeps the target
 * sparse, and a bounded pipeline keeps reads and writes in flight together.
 * @module
 */
import { abortReason, progressReporter, type OperationOptions } from "../core/abort.js";
import type { BlockDevice, Extent } from "../core/block-device.js";
import { UnsupportedFeatureError } from "../errors.js";
import { getKernel } from "../kernel/index.js";
import type { Kernel } from "../kernel/kernel.js";

/** Options of {@link convertImage}. */
export interface ConvertOptions extends OperationOptions {
  /** The kernel that scans for zeros and supplies buffers. Default: the process-wide one. */
  kernel?: Kernel;
  /**
   * Zero detection granularity (`-S`): aligned runs of this many zero bytes in allocated source
   * data are not written. 0 writes every allocated byte. Default 4096.
   */
  sparseSize?: number;
  /**
   * Write whole target units compressed (`-c`): the target's `compressionUnit` capability sets
   * the unit. Rejects with `ERR_UNSUPPORTED_FEATURE` when the target cannot compress.
   */
  compress?: boolean;
  /**
   * The target reads as zeros everywhere before the copy (a fresh image without a backing
   * file). Zero ranges are then skipped instead of written with `writeZeroes`.
   */
  targetIsZero?: boolean;
  /**
   * Copy only what the source's top image stores (`convert -B`): ranges the source reads from
   * its backing chain are left to the target's own backing file.
   */
  skipBacking?: boolean;
  /**
   * Unit compressed writes cover. Default: the target's `compressionUnit` capability. Only a
   * test or a special target needs to set it.
   */
  alignment?: number;
  /** Bytes read per request. Default 2 MiB (rounded down to a multiple of `alignment`). */
  chunkSize?: number;
  /**
   * Salvage (`convert --salvage`): a read that fails is retried sector by sector (512 bytes);
   * each sector that still fails reads as zeros and is reported here. Without it, the first
   * read error rejects the conversion.
   */
  onReadError?: (offset: number, error: unknown) => void;
  /**
   * Most bytes of the source handled per second (`convert -r`): requests wait before they start
   * so the copy never runs ahead of this rate. Default: no limit.
   */
  rateLimit?: number;
  /** Requests in flight (buffers in use). Default 2: one read ahead while the other is written. */
  parallel?: number;
  /**
   * Issue writes in guest order, so formats that allocate on write lay the target out
   * sequentially; the writes still complete concurrently and reads run ahead. Default: the
   * target's `allocatesOnWrite` capability (no order to keep on raw).
   */
  inOrder?: boolean;
}

/** What {@link convertImage} did, in bytes of the virtual disk. */
export interface ConvertStats {
  /** Bytes written as data (plain or compressed). */
  dataBytes: number;
  /** Bytes the target was told to zero. */
  zeroedBytes: number;
  /** Bytes left alone (already zero on the target, or left to its backing file). */
  skippedBytes: number;
  /** Bytes read from the source. */
  readBytes: number;
}

type ItemKind = "data" | "zero" | "skip";
interface Item {
  kind: ItemKind;
  start: number;
  end: number;
}

/**
 * The source's allocation map as work items: data ranges to read (widened to `align` so
 * compressed writes cover whole units), zero ranges, and ranges to skip. Items are in order,
 * contiguous and non-overlapping.
 */
async function* plan(source: BlockDevice, size: number, align: number, skipBacking: boolean): AsyncGenerator<Item> {
  let cur: Item | undefined;
  for await (const e of source.extents(0, size)) {
    const kind = classify(e, skipBacking);
    let start = e.offset;
    let end = e.offset + e.length;
    if (kind === "data" && align > 1) {
      start -= start % align;
      end = Math.min(size, Math.ceil(end / align) * align);
    }
    if (cur) {
      if (kind !== "data" && cur.kind === "data") start = Math.max(start, cur.end);
      if (start >= end) continue;
      if (kind === "data" && cur.kind !== "data" && cur.end > start) {
        // A widened data range swallows the tail of the preceding zero/skip range.
        cur.end = start;
        if (cur.end <= cur.start) cur = undefined;
      }
    }
    if (cur && cur.kind === kind && cur.end >= start) {
      cur.end = Math.max(cur.end, end);
      continue;
    }
    if (cur) yield cur;
    cur = { kind, start, end };
  }
  if (cur) yield cur;
}

function classify(e: Extent, skipBacking: boolean): ItemKind {
  if (skipBacking && e.depth > 0) return "skip";
  return e.data ? "data" : "zero";
}

/** Reads `into` sector by sector; a sector whose read fails reads as zeros and is reported. */
async function readSalvaged(
  source: BlockDevice,
  offset: number,
  into: Uint8Array,
  report: (offset: number, error: unknown) => void,
): Promise<void> {
  const SECTOR = 512;
  for (let pos = 0; pos < into.length; ) {
    const end = Math.min(into.length, pos + SECTOR - ((offset + pos) % SECTOR));
    const part = into.subarray(pos, end);
    try {
      await source.readInto(offset + pos, part);
    } catch (e) {
      part.fill(0);
      report(offset + pos, e);
    }
    pos = end;
  }
}

/**
 * Copies the guest contents of `source` into `target` (whose size must be at least the
 * source's) and flushes the target once at the end. Bytes the target already reads correctly
 * are skipped per the options. Rejects with the first error of any read or write; requests
 * already in flight are awaited first. When `signal` aborts, no new request starts, those in
 * flight finish, the target is flushed (a partly converted target opens and checks clean) and
 * the promise rejects with the signal's reason. Progress runs from 0 to the source size.
 */
export async function convertImage(
  source: BlockDevice,
  target: BlockDevice,
  options: ConvertOptions = {},
): Promise<ConvertStats> {
  const size = source.size;
  if (target.size < size) {
    throw new RangeError(`The target (${target.size} bytes) is smaller than the source (${size} bytes)`);
  }
  const kernel = options.kernel ?? getKernel();
  const sparse = options.sparseSize ?? 4096;
  if (!Number.isSafeInteger(sparse) || sparse < 0) throw new RangeError(`Invalid sparse size ${sparse}`);
  const caps = target.capabilities;
  const compress = !!options.compress;
  if (compress && !caps.compress) {
    throw new UnsupportedFeatureError(`Compression not supported for this file format (${target.format})`, {
      format: target.format,
    });
  }
  const align = Math.max(1, options.alignment ?? (compress ? caps.compressionUnit : caps.allocationUnit));
  const signal = options.signal;
  const unitAlign = compress ? align : 1;
  let chunk = Math.max(options.chunkSize ?? 2 << 20, align);
  chunk -= chunk % align;
  const parallel = Math.max(1, options.parallel ?? 2);
  const inOrder = options.inOrder ?? caps.allocatesOnWrite;
  const zeroTarget = !!options.targetIsZero;
  const stats: ConvertStats = { dataBytes: 0, zeroedBytes: 0, skippedBytes: 0, readBytes: 0 };
  let done = 0;
  const report = progressReporter(size, options.onProgress);
  const progress = (n: number): void => {
    done += n;
    report(done);
  };
  report(0);
  let aborted = false;
  const onAbort = (): void => {
    aborted = true;
    failure ??= { error: abortReason(signal!) };
  };

  const pool: Uint8Array[] = [];
  const allBuffers: Uint8Array[] = [];
  const inflight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  if (signal?.aborted) throw abortReason(signal);
  // In order, a task issues its writes only once the previous task has issued its own: the
  // target sees (and allocates for) writes in guest order, while they complete in any order,
  // as qemu-img's in-order mode does. Reads always run ahead.
  let issueTurn: Promise<void> = Promise.resolve();

  /** Runs a task; `turn` resolves when it may issue writes, `issued` lets the next one issue. */
  const start = (task: (turn: Promise<void>, issued: () => void) => Promise<void>): void => {
    let issued!: () => void;
    const turn = issueTurn;
    const next = new Promise<void>((r) => (issued = r));
    if (inOrder) issueTurn = next;
    const p = task(inOrder ? turn : Promise.resolve(), issued)
      .catch((e) => {
        failure ??= { error: e };
      })
      .finally(() => {
        issued();
        inflight.delete(p);
      });
    inflight.add(p);
  };
  const rate = options.rateLimit;
  if (rate !== undefined && !(rate > 0)) throw new RangeError(`Invalid rate limit ${rate}`);
  const startedAt = Date.now();
  let admitted = 0;
  /** Waits until the rate limit admits `bytes` more (slept in steps, so an abort is seen). */
  const throttle = async (bytes: number): Promise<void> => {
    if (rate === undefined) return;
    admitted += bytes;
    for (;;) {
      const due = startedAt + ((admitted - bytes) / rate) * 1000 - Date.now();
      if (due <= 0 || failure) return;
      await new Promise<void>((r) => setTimeout(() => r(), Math.min(due, 50)));
    }
  };
  const waitForSlot = async (bytes = 0): Promise<void> => {
    while (inflight.size >= parallel) await Promise.race(inflight);
    await throttle(bytes);
  };
  const takeBuffer = (): Uint8Array => {
    const b = pool.pop();
    if (b) return b;
    const nb = kernel.allocBuffer(chunk);
    allBuffers.push(nb);
    return nb;
  };

  /**
   * Issues the writes of `buf[0, len)` (guest `offset`) minus its zero granules into `writes`,
   * without waiting for them. (Joining runs that cross a request boundary into one write was
   * tried: it saved allocations but cost as much in copying, measured on qcow2 targets.)
   */
  const issueScanned = (offset: number, buf: Uint8Array, len: number, writes: Promise<void>[]): void => {
    const emit = (zero: boolean, from: number, to: number): void => {
      const n = to - from;
      if (!zero) {
        stats.dataBytes += n;
        writes.push(target.write(offset + from, buf.subarray(from, to)));
      } else if (zeroTarget) {
        stats.skippedBytes += n;
      } else {
        stats.zeroedBytes += n;
        writes.push(target.writeZeroes(offset + from, n));
      }
    };
    let runStart = 0;
    let runZero = false;
    let pos = 0;
    while (pos < len) {
      // Granules are aligned to guest offsets, so the first one may be short.
      const mis = (offset + pos) % sparse;
      const gEnd = Math.min(len, pos + sparse - mis);
      const zero = kernel.findNonZero(buf, pos, gEnd) === gEnd;
      const end = mis === 0 ? kernel.granuleRunEnd(buf, pos, len, sparse) : gEnd;
      if (pos > runStart && zero !== runZero) {
        emit(runZero, runStart, pos);
        runStart = pos;
      }
      runZero = zero;
      pos = end;
    }
    if (len > runStart) emit(runZero, runStart, len);
  };

  /** Issues compressed writes of whole units; all-zero units are skipped or zeroed. */
  const issueCompressed = (offset: number, buf: Uint8Array, len: number, writes: Promise<void>[]): void => {
    let pos = 0;
    while (pos < len) {
      const end = Math.min(len, pos + align);
      if (kernel.findNonZero(buf, pos, end) === end) {
        if (zeroTarget) stats.skippedBytes += end - pos;
        else {
          stats.zeroedBytes += end - pos;
          writes.push(target.writeZeroes(offset + pos, end - pos));
        }
      } else {
        stats.dataBytes += end - pos;
        writes.push(target.writeCompressed(offset + pos, buf.subarray(pos, end)));
      }
      pos = end;
    }
  };

  const copyChunk = async (offset: number, len: number, turn: Promise<void>, issued: () => void): Promise<void> => {
    const buf = takeBuffer();
    const writes: Promise<void>[] = [];
    try {
      const view = buf.subarray(0, len);
      try {
        await source.readInto(offset, view);
      } catch (e) {
        if (!options.onReadError) throw e;
        await readSalvaged(source, offset, view, options.onReadError);
      }
      stats.readBytes += len;
      await turn;
      if (failure) return;
      if (compress) issueCompressed(offset, buf, len, writes);
      else if (sparse === 0) {
        stats.dataBytes += len;
        writes.push(target.write(offset, view));
      } else issueScanned(offset, buf, len, writes);
      issued();
      await Promise.all(writes);
      progress(len);
    } finally {
      // Every write must have settled before the buffer is reused.
      await Promise.allSettled(writes);
      pool.push(buf);
    }
  };

  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const item of plan(source, size, unitAlign, !!options.skipBacking)) {
      if (failure) break;
      const len = item.end - item.start;
      if (item.kind === "skip" || (item.kind === "zero" && zeroTarget)) {
        stats.skippedBytes += len;
        progress(len);
        continue;
      }
      if (item.kind === "zero") {
        await waitForSlot();
        start(async (turn, issued) => {
          await turn;
          if (failure) return;
          const p = target.writeZeroes(item.start, len);
          issued();
          await p;
          stats.zeroedBytes += len;
          progress(len);
        });
        continue;
      }
      let pos = item.start;
      while (pos < item.end && !failure) {
        const end = Math.min(item.end, pos + chunk);
        await waitForSlot(end - pos);
        const off = pos;
        start((turn, issued) => copyChunk(off, end - off, turn, issued));
        pos = end;
      }
    }
  } catch (e) {
    failure ??= { error: e };
  }
  await Promise.allSettled([...inflight]);
  signal?.removeEventListener("abort", onAbort);
  for (const b of allBuffers) kernel.freeBuffer(b);
  if (aborted) {
    // What was written stays valid: make it durable, then report the abort.
    await target.flush();
    throw failure!.error;
  }
  if (failure) throw failure.error;
  await target.flush();
  report(size);
  return stats;
}
