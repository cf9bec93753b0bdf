/**
 * Progress reporting and cancellation shared by the long-running operations.
 * @module
 */
export {
  abortReason,
  progressReporter,
  throwIfAborted,
  type OperationOptions,
  type Progress,
  type ProgressListener,
} from "../core/abort.js";
import type { ProgressListener } from "../core/abort.js";

/** @deprecated Use {@link ProgressListener}: the operations call it with `{ done, total }`. */
export type ProgressCallback = ProgressListener;
