/**
 * A disk's guest bytes as a web `ReadableStream` (here, not in `streams/`, so that
 * `ImageDevice.stream` can delegate to it: core imports no layer above it).
 * @module
 */
import type { BlockDevice } from "./block-device.js";

/** Options of {@link deviceStream}. */
export interface DeviceStreamOptions {
  /** First guest byte (default 0). */
  start?: number;
  /** End, exclusive (default the disk's size). */
  end?: number;
  /** Bytes per chunk (default 1 MiB). */
  chunkSize?: number;
}

/**
 * The guest bytes `[start, end)` of `device` (zeros materialised, backing chains read through)
 * as a `ReadableStream` of fresh chunks of `chunkSize` bytes (the last may be shorter). Reads
 * happen as the consumer pulls, one chunk ahead at most; cancelling stops them. The device is
 * not closed when the stream ends. A range outside the disk is a `RangeError`.
 */
export function deviceStream(device: BlockDevice, options: DeviceStreamOptions = {}): ReadableStream<Uint8Array> {
  const start = options.start ?? 0;
  const end = options.end ?? device.size;
  const chunk = options.chunkSize ?? 1 << 20;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > device.size || start > end) {
    throw new RangeError(`Invalid stream range [${start}, ${end}) of a ${device.size}-byte disk`);
  }
  if (!Number.isSafeInteger(chunk) || chunk <= 0) throw new RangeError(`Invalid chunk size ${chunk}`);
  let pos = start;
  let cancelled = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (pos >= end) {
          controller.close();
          return;
        }
        const n = Math.min(chunk, end - pos);
        const buf = new Uint8Array(n);
        await device.readInto(pos, buf);
        pos += n;
        if (cancelled) return;
        controller.enqueue(buf);
        if (pos >= end) controller.close();
      },
      cancel() {
        cancelled = true;
      },
    },
    { highWaterMark: 1 },
  );
}
