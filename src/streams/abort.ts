/**
 * AbortSignal helpers for the streaming layer (on top of core's).
 * @module
 */
import { abortReason, throwIfAborted } from "../core/abort.js";

/** Throws the abort reason when `signal` is aborted. */
export const checkAborted = throwIfAborted;

/** `p`, or a rejection with the abort reason as soon as `signal` aborts (whichever is first). */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
