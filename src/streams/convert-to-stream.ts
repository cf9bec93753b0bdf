/**
 * Converting an image into an append-only sink: a pipe, an upload, a `WritableStream`.
 * The target format's sequential writer plans the layout from the source's allocation map and
 * writes the file front to back; this module drives it, bounds what is queued, reports progress
 * and turns an abort into an errored sink.
 * @module
 */
import type { OperationOptions, Progress } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import type { CreateOptionValues, FormatDriver } from "../core/format.js";
import { parseCreateOptions } from "../core/options.js";
import { ImageError, UnsupportedFeatureError } from "../errors.js";
import type { SequentialSource, SequentialWritePlan } from "../core/sequential-writer.js";
import { getKernel } from "../kernel/index.js";
import type { Kernel } from "../kernel/kernel.js";
import { driverList, lookupDriver } from "../ops/drivers.js";
import { checkAborted } from "./abort.js";
import { GatheringOutput } from "./output.js";
import { driveSink, type StreamSink } from "./sink.js";
import { sequentialSource } from "./source.js";
import { scanNonZeroUnits } from "./zero-scan.js";

/** Progress of a streaming conversion: `done` of `total` source bytes read (over every pass). */
export type StreamProgress = Progress;

/** Options of {@link convertToStream}. */
export interface ConvertToStreamOptions extends OperationOptions {
  /** Target format (`raw`, `qcow2`, `vmdk` with `subformat=streamOptimized`, `vpc`). */
  format: string;
  /** Create options as `qemu-img -o` names them; strings are parsed (`cluster_size: "64k"`). */
  options?: Readonly<Record<string, string | number | boolean>>;
  /** Store clusters/grains compressed (`convert -c`): qcow2 (read twice) and vmdk (always). */
  compress?: boolean;
  /**
   * Zero detection (`-S`), default 4096; 0 keeps every byte the allocation map calls data.
   * When non-zero, all-zero units are left unallocated: vmdk grains as they stream; qcow2
   * clusters and VHD blocks after a zero-scan pass over the data (their tables come first), so
   * the source is read once more. Units are the format's own, whatever the value.
   */
  sparseSize?: number;
  /** Aborting rejects with the signal's reason and errors the sink. */
  signal?: AbortSignal;
  /** Called with monotonic progress, from `{ done: 0 }` to `{ done: total }`. */
  onProgress?: (p: StreamProgress) => void;
  /** The output's name, for formats that record one (the vmdk descriptor). Default `disk.<format>`. */
  name?: string;
  /** Extra drivers, tried before the built-in ones. */
  drivers?: readonly FormatDriver[];
  kernel?: Kernel;
  /** Receives non-fatal notes (a size rounded up). */
  warn?: (message: string) => void;
}

/** What {@link convertToStream} wrote. */
export interface ConvertToStreamResult {
  /** Bytes of the image file written to the sink. */
  bytesWritten: number;
}

function rangeBytes(src: SequentialSource): number {
  let n = 0;
  for (const r of src.dataRanges) n += r.length;
  return n;
}

/** Names of the formats among `drivers` that can be written to a non-seekable output. */
export function streamableFormats(drivers: readonly FormatDriver[] = driverList()): string[] {
  return drivers.filter((d) => d.sequentialWriter).map((d) => d.name);
}

/**
 * The writer for `format` with its options checked, before anything is written. Throws an
 * {@link ImageError}: unknown format, a format that cannot be streamed (naming those that can),
 * or options the stream does not support.
 */
export function prepareStreamWriter(
  format: string,
  options: Readonly<Record<string, string | number | boolean>> = {},
  compress = false,
  extra: readonly FormatDriver[] = [],
): { driver: FormatDriver; values: CreateOptionValues; plan: SequentialWritePlan } {
  const drivers = driverList(extra);
  const driver = lookupDriver(format, drivers);
  if (!driver) {
    const known = drivers.map((d) => d.name).join(", ");
    throw new ImageError("ERR_UNKNOWN_FORMAT", `Unknown format '${format}' (known: ${known})`);
  }
  const writer = driver.sequentialWriter;
  if (!writer) {
    throw new UnsupportedFeatureError(
      `Cannot write ${driver.name} to a non-seekable output: its layout needs a seekable file ` +
        `(formats that can: ${streamableFormats(drivers).join(", ")})`,
      { format: driver.name },
    );
  }
  const values = parseCreateOptions(driver.name, driver.createOptions, Object.entries(options));
  return { driver, values, plan: writer.prepare(values, compress) };
}

/**
 * Writes `source` as an image of `options.format` into `sink`, front to back. Resolves when the
 * sink has accepted (and, for a `WritableStream`, closed after) the last byte. At most about
 * 1 MiB is gathered here, plus what the sink queues before it pushes back.
 *
 * On failure or abort the sink is aborted (web) or destroyed (Node) with the error, so a reader
 * sees an error rather than a short image; the promise rejects with the error (the signal's
 * reason on abort, a DOMException named `AbortError` by default). The source is not closed.
 */
export async function convertToStream(
  source: BlockDevice,
  sink: StreamSink,
  options: ConvertToStreamOptions,
): Promise<ConvertToStreamResult> {
  const signal = options.signal;
  const driven = driveSink(sink, signal);
  try {
    const compress = !!options.compress;
    const { driver, values, plan } = prepareStreamWriter(options.format, options.options, compress, options.drivers);
    const sparseSize = options.sparseSize ?? 4096;
    if (!Number.isSafeInteger(sparseSize) || sparseSize < 0) throw new RangeError(`Invalid sparse size ${sparseSize}`);
    checkAborted(signal);
    let src = await sequentialSource(source, signal);
    const kernel = options.kernel ?? getKernel();
    const scan = plan.zeroScanUnit !== undefined && sparseSize > 0;
    let total = rangeBytes(src) * (plan.passes + (scan ? 1 : 0));
    let done = 0;
    options.onProgress?.({ done: 0, total });
    const progress = (bytes: number): void => {
      const next = Math.min(total, done + bytes);
      if (next === done) return;
      done = next;
      options.onProgress?.({ done, total });
    };
    if (scan) {
      const before = rangeBytes(src);
      src = { ...src, dataRanges: await scanNonZeroUnits(src, plan.zeroScanUnit!, kernel, progress) };
      // The writer's passes now read only the narrowed ranges.
      total -= (before - rangeBytes(src)) * plan.passes;
      progress(0);
    }
    const output = new GatheringOutput(driven, signal);
    await driver.sequentialWriter!.write({
      source: src,
      output,
      options: values,
      compress,
      sparseSize,
      kernel,
      name: options.name ?? `disk.${driver.name}`,
      progress,
      warn: options.warn ?? (() => {}),
    });
    await output.flush();
    checkAborted(signal);
    await driven.close();
    if (done < total) options.onProgress?.({ done: total, total });
    return { bytesWritten: output.position };
  } catch (e) {
    await driven.abort(e);
    throw e;
  }
}
