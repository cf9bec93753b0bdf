/**
 * Progress reporting shared by the long-running operations.
 * @module
 */

/** Called as an operation advances: `done` of `total` bytes (of the virtual disk) handled. */
export type ProgressCallback = (done: number, total: number) => void;
