/**
 * Tools for consistency checks: a bitmap of referenced clusters, capped message lists, an
 * empty result.
 * @module
 */
import type { CheckResult } from "../../core/format.js";

/** A result with every count at zero and the cluster statistics started. */
export function emptyCheckResult(totalClusters: number): CheckResult {
  return {
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    totalClusters,
    allocatedClusters: 0,
    fragmentedClusters: 0,
    messages: [],
  };
}

/** One bit per cluster of a file. */
export class ClusterBitmap {
  private readonly bits: Uint8Array;

  constructor(readonly clusters: number) {
    this.bits = new Uint8Array(Math.ceil(clusters / 8));
  }

  /** True when cluster `i` (inside the bitmap) is set. */
  has(i: number): boolean {
    return i >= 0 && i < this.clusters && (this.bits[i >> 3] & (1 << (i & 7))) !== 0;
  }

  /** Sets cluster `i` (ignored outside the bitmap); returns whether it was already set. */
  set(i: number): boolean {
    if (i < 0 || i >= this.clusters) return false;
    const was = (this.bits[i >> 3] & (1 << (i & 7))) !== 0;
    this.bits[i >> 3] |= 1 << (i & 7);
    return was;
  }

  /** Sets clusters `[first, first+count)`; returns how many were already set. */
  setRange(first: number, count: number): number {
    let dup = 0;
    for (let i = first; i < first + count; i++) if (this.set(i)) dup++;
    return dup;
  }
}

/** Collects check messages, keeping the first `limit` of a kind and counting the rest. */
export class CheckMessages {
  readonly lines: string[] = [];
  private readonly counts = new Map<string, number>();

  constructor(private readonly limit = 100) {}

  /** Adds `line` of kind `kind` unless `limit` of that kind were already added. */
  add(kind: string, line: string): void {
    const n = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, n);
    if (n <= this.limit) this.lines.push(line);
  }

  /** The lines, with one summary line per kind that went over the limit. */
  finish(): string[] {
    const out = [...this.lines];
    for (const [kind, n] of this.counts) {
      if (n > this.limit) out.push(`... and ${n - this.limit} more ${kind} messages`);
    }
    return out;
  }
}
