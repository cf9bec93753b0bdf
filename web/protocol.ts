/**
 * Messages between the page (app.ts) and its worker (worker.ts). The worker owns every open
 * image; the page only draws what it is told.
 * @module
 */
import type { QJson } from "../src/browser.js";

/** A run of the allocation map: what the guest sees there. */
export interface MapRun {
  start: number;
  length: number;
  /** data: stored in the top image; zero: reads as zeros; backing: from a backing file; unallocated. */
  kind: "data" | "zero" | "backing" | "unallocated";
}

export interface WritableFormat {
  name: string;
  options: Array<{ name: string; description: string }>;
}

/** Page → worker. */
export type Request =
  | { type: "open"; file?: File; url?: string }
  | { type: "convert"; format: string; options: string; compress: boolean; keepInOpfs: boolean }
  | { type: "cancel" };

/** Worker → page. */
export type Reply =
  | { type: "formats"; formats: WritableFormat[]; opfs: boolean }
  | { type: "opened"; name: string; size: number; info: Record<string, QJson | undefined>; map: MapRun[]; mapTruncated: boolean }
  | { type: "checked"; supported: boolean; corruptions: number; leaks: number; messages: string[] }
  | { type: "progress"; done: number; total: number }
  | { type: "converted"; name: string; blob: Blob; opfs: boolean }
  | { type: "cancelled" }
  | { type: "error"; message: string };
