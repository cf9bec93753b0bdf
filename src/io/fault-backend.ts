/**
 * A fault-injecting {@link IoBackend} wrapper for crash-consistency tests: it records every
 * write, truncate and flush that reaches the wrapped backend, can fail the N-th write, and can
 * rebuild the file as it would be after a crash at any point of the recorded stream
 * (optionally with the last write torn at a sector boundary).
 * @module
 */
import { ImageError } from "../errors.js";
import type { IoBackend, IoCapabilities } from "./backend.js";
import { MemoryBackend } from "./memory.js";

/** One recorded mutation. `data` is a copy taken when the write was issued. */
export type FaultBackendOp =
  | { readonly kind: "write"; readonly offset: number; readonly data: Uint8Array }
  | { readonly kind: "truncate"; readonly size: number }
  | { readonly kind: "flush" };

/** Options of {@link FaultBackend}. */
export interface FaultBackendOptions {
  /** Label for messages. Default `fault(<inner name>)`. */
  name?: string;
  /**
   * Fails every write from this one on (0-based count of writes) with `ERR_IO`, as a device
   * that went away. Undefined: never.
   */
  failFromWrite?: number;
}

/** Where and how a replayed crash cuts the recorded stream. */
export interface FaultCut {
  /** Mutations (writes and truncates, flushes not counted) that reached the disk. */
  ops: number;
  /**
   * When set, mutation number `ops` (the next one) is also applied, but only its first `tear`
   * bytes (a torn write). Ignored for truncates.
   */
  tear?: number;
}

/** A crash with a volatile cache, for {@link FaultBackend.replaySubset}. */
export interface FaultSubsetCut {
  /** Mutations before this index are all durable (a flush completed after them). */
  durable: number;
  /** Indexes (≥ `durable`) of the later mutations the cache happened to write. */
  keep: ReadonlySet<number>;
  /** A kept mutation that reached the disk only partly … */
  tornIndex?: number;
  /** … its first `tear` bytes. */
  tear?: number;
}

/** The wrapper. Reads pass through; mutations are recorded then passed through. */
export class FaultBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities;
  /** Every mutation and flush, in issue order. */
  readonly log: FaultBackendOp[] = [];
  private readonly inner: IoBackend;
  private readonly base: Uint8Array;
  private writes = 0;
  private failFrom: number | undefined;

  /**
   * @param inner the backend written through (default: an empty {@link MemoryBackend})
   * @param base the inner backend's contents before the first recorded op (kept, not copied)
   */
  constructor(inner: IoBackend = new MemoryBackend(), base: Uint8Array = new Uint8Array(0), options: FaultBackendOptions = {}) {
    this.inner = inner;
    this.base = base;
    this.name = options.name ?? `fault(${inner.name})`;
    this.capabilities = inner.capabilities;
    this.failFrom = options.failFromWrite;
  }

  /** Wraps a fresh {@link MemoryBackend} holding a copy of `bytes`. */
  static over(bytes: Uint8Array, options: FaultBackendOptions = {}): FaultBackend {
    return new FaultBackend(new MemoryBackend(bytes.slice()), bytes.slice(), options);
  }

  /** Fails writes from the `n`-th on (counting from now on the total so far); undefined stops. */
  failFromWrite(n: number | undefined): void {
    this.failFrom = n;
  }

  /** Number of mutations (writes and truncates) recorded so far. */
  get mutationCount(): number {
    let n = 0;
    for (const op of this.log) if (op.kind !== "flush") n++;
    return n;
  }

  /** Mutation counts at which a flush completed (every mutation before it was durable). */
  flushPoints(): number[] {
    const out: number[] = [];
    let n = 0;
    for (const op of this.log) {
      if (op.kind === "flush") out.push(n);
      else n++;
    }
    return out;
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    return this.inner.read(offset, into);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.failFrom !== undefined && this.writes >= this.failFrom) {
      throw new ImageError("ERR_IO", `Injected write failure at write ${this.writes} (offset ${offset})`, { file: this.name });
    }
    this.writes++;
    this.log.push({ kind: "write", offset, data: data.slice() });
    await this.inner.write(offset, data);
  }

  async flush(): Promise<void> {
    await this.inner.flush();
    this.log.push({ kind: "flush" });
  }

  size(): Promise<number> {
    return this.inner.size();
  }

  async truncate(size: number): Promise<void> {
    this.log.push({ kind: "truncate", size });
    await this.inner.truncate(size);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * The file after a crash at `cut`: the base contents plus the first `cut.ops` mutations
   * (and a torn prefix of the next one). Returns a new, independent {@link MemoryBackend}.
   */
  async replay(cut: FaultCut): Promise<MemoryBackend> {
    const mem = new MemoryBackend(this.base.slice());
    let n = 0;
    for (const op of this.log) {
      if (op.kind === "flush") continue;
      if (n > cut.ops) break;
      if (n === cut.ops) {
        if (cut.tear !== undefined && op.kind === "write" && cut.tear > 0) {
          await mem.write(op.offset, op.data.subarray(0, Math.min(cut.tear, op.data.length)));
        }
        break;
      }
      if (op.kind === "write") await mem.write(op.offset, op.data);
      else await mem.truncate(op.size);
      n++;
    }
    return mem;
  }

  /**
   * The file after a crash with a volatile write cache: every mutation before `cut.durable`
   * (a flush point, so they were on stable storage) plus only the mutations in `cut.keep`
   * among the later ones, applied in issue order (a cache keeps any subset of the writes since
   * the last completed flush). `cut.tear`, when set, keeps only a prefix of that many bytes of
   * the kept mutation `cut.tornIndex`. Returns a new, independent {@link MemoryBackend}.
   */
  async replaySubset(cut: FaultSubsetCut): Promise<MemoryBackend> {
    const mem = new MemoryBackend(this.base.slice());
    let n = 0;
    for (const op of this.log) {
      if (op.kind === "flush") continue;
      const index = n++;
      if (index >= cut.durable && !cut.keep.has(index)) continue;
      if (op.kind === "truncate") {
        await mem.truncate(op.size);
      } else if (index === cut.tornIndex && cut.tear !== undefined) {
        if (cut.tear > 0) await mem.write(op.offset, op.data.subarray(0, Math.min(cut.tear, op.data.length)));
      } else {
        await mem.write(op.offset, op.data);
      }
    }
    return mem;
  }

  /** The recorded mutation number `i` (flushes skipped), for choosing tear sizes. */
  mutation(i: number): FaultBackendOp | undefined {
    let n = 0;
    for (const op of this.log) {
      if (op.kind === "flush") continue;
      if (n === i) return op;
      n++;
    }
    return undefined;
  }
}
