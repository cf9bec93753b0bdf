/**
 * The contract between the streaming layer (`src/streams/`) and a format that can be written
 * front to back into an append-only sink (a pipe, a `WritableStream`, an upload).
 *
 * A format offers it through {@link FormatDriver.sequentialWriter}; the streaming layer finds it
 * through the registry and never names a format. The writer plans the whole layout from the
 * source's data ranges first (no data read), then appends the file in order; formats whose
 * layout depends on the data (compressed qcow2) read the source twice.
 * @module
 */
import type { Kernel } from "../kernel/kernel.js";
import type { CreateOptionValues } from "./format.js";

/** A run of guest bytes that may hold data. Everything outside every range reads as zeros. */
export interface SequentialDataRange {
  readonly offset: number;
  readonly length: number;
}

/** The source as a sequential writer sees it. */
export interface SequentialSource {
  /** Virtual size in bytes. */
  readonly size: number;
  /** The ranges that may hold data: sorted, disjoint, inside `[0, size)`. */
  readonly dataRanges: readonly SequentialDataRange[];
  /**
   * Fills `into` with the guest bytes at `offset` (zeros outside the data ranges). Rejects with
   * the abort reason once the operation is aborted.
   */
  readInto(offset: number, into: Uint8Array): Promise<void>;
}

/** The append-only destination. */
export interface SequentialOutput {
  /**
   * Appends `bytes` (any length, 0 allowed). The output keeps the buffer: the writer must not
   * change it afterwards. Resolves when the sink can take more (backpressure), rejects when the
   * sink failed or the operation was aborted.
   */
  write(bytes: Uint8Array): Promise<void>;
  /** Bytes appended so far (the file offset of the next byte). */
  readonly position: number;
}

/** Everything a sequential writer receives. */
export interface SequentialWriteContext {
  readonly source: SequentialSource;
  readonly output: SequentialOutput;
  /** Create options, already checked against the driver's `createOptions`. */
  readonly options: CreateOptionValues;
  /** Store data compressed where the format can (`convert -c`). */
  readonly compress: boolean;
  /**
   * Zero detection granularity (`-S`): a writer whose layout follows the data may drop aligned
   * all-zero units; 0 keeps every byte of the data ranges.
   */
  readonly sparseSize: number;
  readonly kernel: Kernel;
  /** The output's name (a path, `-`, or a label), for formats that record one. */
  readonly name: string;
  /** Reports `bytes` more of the current pass over the source done (for progress). */
  progress(bytes: number): void;
  warn(message: string): void;
}

/** What a writer tells the streaming layer before it starts. */
export interface SequentialWritePlan {
  /** How many times the writer reads the data ranges (1, or 2 for layouts that depend on the data). */
  readonly passes: number;
  /**
   * The unit (bytes) of a layout fixed before any data is written (qcow2 clusters, VHD blocks).
   * When set and zero detection is on, the streaming layer first reads the data ranges once and
   * narrows them to the units holding a non-zero byte, so all-zero units stay unallocated
   * (allocation maps of raw files do not know their holes). Absent: the writer needs no scan.
   */
  readonly zeroScanUnit?: number;
}

/** A format's sequential writer. */
export interface SequentialWriter {
  /**
   * Checks `options` and `compress` before anything is written: throws an `ImageError`
   * (`ERR_INVALID_OPTION` / `ERR_UNSUPPORTED_FEATURE`) naming what cannot be streamed.
   */
  prepare(options: CreateOptionValues, compress: boolean): SequentialWritePlan;
  /** Writes the whole image to `ctx.output`, front to back. */
  write(ctx: SequentialWriteContext): Promise<void>;
}
