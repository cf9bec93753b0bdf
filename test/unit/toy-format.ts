/**
 * A minimal format for engine tests: a cluster map kept in memory, data clusters appended to
 * a MemoryBackend. Unallocated clusters read through to the backing device.
 */
import type { FormatInstance, FormatInfo } from "../../src/core/format.js";
import type { Allocation, Mapping } from "../../src/core/mapping.js";
import { MemoryBackend } from "../../src/io/memory.js";

export class ToyInstance implements FormatInstance {
  readonly format = "toy";
  readonly file = new MemoryBackend(new Uint8Array(0), { name: "toy-data" });
  /** cluster index → host offset, or -1 for an explicit zero cluster */
  readonly map = new Map<number, number>();
  readonly commits: number[] = [];
  /** Every lifecycle event and change the engine passed to the instance, in order. */
  readonly events: string[] = [];
  /** Calls of `beginWrites` so far. */
  beginCalls = 0;
  /** When set, the next `beginWrites` calls reject with it (and clear it). */
  failBegin?: Error;
  /** When set, `beginWrites` waits for it before resolving. */
  beginGate?: Promise<void>;
  /** Optional members a test may install. */
  setBacking?: FormatInstance["setBacking"];
  makeEmpty?: FormatInstance["makeEmpty"];
  check?: FormatInstance["check"];
  next = 0;
  constructor(
    public size: number,
    readonly allocationUnit: number,
    readonly backing?: { name: string },
  ) {}

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const u = this.allocationUnit;
    const idx = Math.floor(offset / u);
    const within = offset - idx * u;
    const len = Math.min(length, u - within, this.size - offset);
    const host = this.map.get(idx);
    if (host === undefined) return { kind: "backing", length: len };
    if (host === -1) return { kind: "zero", length: len, allocated: true };
    return { kind: "data", length: len, file: this.file, fileOffset: host + within };
  }

  async beginWrites(): Promise<void> {
    this.beginCalls++;
    this.events.push("begin");
    if (this.beginGate) await this.beginGate;
    const fail = this.failBegin;
    if (fail) {
      this.failBegin = undefined;
      throw fail;
    }
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    this.events.push("allocate");
    const u = this.allocationUnit;
    const units = Math.ceil(length / u);
    const host = this.next;
    this.next += units * u;
    return {
      mapping: { kind: "data", length, file: this.file, fileOffset: host },
      commit: async () => {
        for (let i = 0; i < units; i++) this.map.set(offset / u + i, host + i * u);
        this.commits.push(offset);
      },
    };
  }

  async zeroRange(offset: number, length: number): Promise<number> {
    this.events.push("zero");
    const u = this.allocationUnit;
    const n = Math.floor(length / u);
    for (let i = 0; i < n; i++) this.map.set(offset / u + i, -1);
    return n * u;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.events.push("discard");
    const u = this.allocationUnit;
    for (let i = 0; i < length / u; i++) this.map.delete(offset / u + i);
  }

  async resize(newSize: number): Promise<void> {
    this.events.push("resize");
    this.size = newSize;
  }

  async flush(): Promise<void> {
    this.events.push("flush");
  }
  async info(): Promise<FormatInfo> {
    return { clusterSize: this.allocationUnit };
  }
  async close(): Promise<void> {}
}
