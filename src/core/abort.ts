/**
 * Cancellation and progress, shared by every long operation.
 * @module
 */

/** Progress of a long operation: `done` of `total` bytes handled; monotonic, from 0 to `total`. */
export interface Progress {
  readonly done: number;
  readonly total: number;
}

/** Receives {@link Progress} as an operation advances. */
export type ProgressListener = (p: Progress) => void;

/** What every long operation accepts. */
export interface OperationOptions {
  /** Checked between requests: the operation stops at a consistent point and rejects with its reason. */
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/**
 * Throws the signal's reason when it is aborted (a `DOMException` named `AbortError` unless the
 * caller gave another reason).
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** The error an aborted operation rejects with. */
export function abortReason(signal: AbortSignal): unknown {
  const reason: unknown = signal.reason;
  if (reason !== undefined) return reason;
  return new DOMException("The operation was aborted", "AbortError");
}

/**
 * A progress reporter that only moves forward and ends at `total` exactly once: repeated or
 * smaller values are dropped, values past `total` are clipped.
 */
export function progressReporter(total: number, listener: ProgressListener | undefined): (done: number) => void {
  let last = -1;
  return (done: number) => {
    if (!listener) return;
    const d = Math.min(total, Math.max(0, done));
    if (d <= last) return;
    last = d;
    listener({ done: d, total });
  };
}
