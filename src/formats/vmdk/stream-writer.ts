/**
 * The write side of stream-optimized extents, and the decoding of their grains.
 *
 * A compressed grain cannot be written in pieces, but engines and `convert` write in pieces.
 * So a grain being written lives in memory ("pending") until the writer has moved on: when the
 * pending grains exceed a memory budget (the least recently written goes first), or on
 * `flush`/`close`. Then it is compressed,
 * appended at the end of the file with its grain marker, and its GTE is set (data before the
 * entry that points at it). Sequential writers therefore produce a valid stream with any write
 * sizes. A grain already written compressed is never rewritten — QEMU refuses that too — so a
 * write into one fails with `ERR_UNSUPPORTED_FEATURE`.
 * @module
 */
import type { DataMapping } from "../../core/mapping.js";
import { CorruptImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { encodeVmdkCompressedGrain, inflateVmdkGrain } from "./compressed-grain.js";
import { VMDK_SECTOR_SIZE, VmdkGrainMarkerCodec } from "./layout.js";

/** Bytes of pending grains kept in memory before the least recently written is compressed out. */
const PENDING_BUDGET = 64 << 20;
/** Pending grains kept whatever their size. */
const MIN_PENDING = 4;
/** Decoded grains kept for reads that cover a grain in several requests. */
const DECODED_CACHE = 4;

/**
 * A grain being written: an in-memory buffer the engine writes into (the `data` mapping's
 * file). Once sealed for compression, further writes fail instead of being lost.
 */
export class VmdkPendingGrain implements IoBackend {
  readonly capabilities = { writable: true, sparse: false };
  /** Write sequence number of the latest write (for least-recently-written eviction). */
  touched = 0;
  private sealed = false;
  private readonly data: Uint8Array;

  constructor(
    readonly name: string,
    readonly length: number,
    private readonly nextSeq: () => number,
    private readonly sealedError: () => Error,
  ) {
    this.data = new Uint8Array(length);
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const n = Math.max(0, Math.min(into.length, this.length - offset));
    into.set(this.data.subarray(offset, offset + n));
    return n;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.sealed) throw this.sealedError();
    if (offset + data.length > this.length) throw new RangeError(`write of ${data.length} bytes at ${offset} passes the grain's ${this.length}`);
    this.touched = this.nextSeq();
    this.data.set(data, offset);
  }

  /** Stops further writes and returns the grain's bytes. */
  seal(): Uint8Array {
    this.sealed = true;
    return this.data;
  }

  async flush(): Promise<void> {}
  async size(): Promise<number> {
    return this.length;
  }
  async truncate(): Promise<void> {
    throw this.sealedError();
  }
  async close(): Promise<void> {}
}

/** Where the stream writer puts a finished grain and how it records it. */
export interface VmdkStreamSink {
  /** Appends `bytes` (a whole number of sectors) at the end of the extent; returns the offset. */
  append(bytes: Uint8Array): Promise<number>;
  /** Points grain `grain`'s GTE at `sector`. */
  link(grain: number, sector: number): Promise<void>;
}

/** Pending grains and the compressed-grain codec of one stream extent. */
export class VmdkStreamGrains {
  private readonly pending = new Map<number, VmdkPendingGrain>();
  private readonly decoded = new Map<number, { data: Uint8Array; length: number }>();
  private seq = 0;
  private readonly maxPending: number;

  constructor(
    private readonly file: IoBackend,
    private readonly grainSize: number,
    private readonly markers: boolean,
    private readonly sink: VmdkStreamSink,
  ) {
    this.maxPending = Math.max(MIN_PENDING, Math.floor(PENDING_BUDGET / grainSize));
  }

  /** The mapping of a pending grain at `inGrain`, or undefined when `grain` is not pending. */
  pendingMapping(grain: number, inGrain: number, length: number): DataMapping | undefined {
    const p = this.pending.get(grain);
    if (!p) return undefined;
    return { kind: "data", file: p, fileOffset: inGrain, length: Math.min(length, p.length - inGrain) };
  }

  /** The lowest pending grain above `grain`, or undefined. */
  firstPendingAfter(grain: number): number | undefined {
    let best: number | undefined;
    for (const g of this.pending.keys()) if (g > grain && (best === undefined || g < best)) best = g;
    return best;
  }

  /** True when some grain is pending. */
  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** A fresh in-memory grain of `length` bytes (zeros) for `grain`, named like the extent file. */
  newPendingGrain(grain: number, length: number): VmdkPendingGrain {
    return new VmdkPendingGrain(
      this.file.name,
      length,
      () => ++this.seq,
      () => vmdkStreamOverwriteError(this.file.name, grain, this.grainSize),
    );
  }

  /**
   * Makes `p` the pending contents of `grain`. Past the memory budget the least recently
   * written pending grain is compressed out (the one a sequential writer is done with).
   */
  async addPending(grain: number, p: VmdkPendingGrain): Promise<void> {
    p.touched = ++this.seq;
    this.pending.set(grain, p);
    while (this.pending.size > this.maxPending) {
      let victim = grain;
      let oldest = Infinity;
      for (const [g, q] of this.pending) {
        if (q.touched < oldest) {
          oldest = q.touched;
          victim = g;
        }
      }
      await this.writeOut(victim);
    }
  }

  /** Drops a pending grain (a whole-grain compressed write replaces it). */
  dropPending(grain: number): void {
    this.pending.get(grain)?.seal();
    this.pending.delete(grain);
  }

  /** Compresses and appends every pending grain, in guest order. */
  async writeAllPending(): Promise<void> {
    for (const grain of [...this.pending.keys()].sort((a, b) => a - b)) await this.writeOut(grain);
  }

  private async writeOut(grain: number): Promise<void> {
    const p = this.pending.get(grain);
    if (!p) return;
    // Sealed first: a write racing with the compression fails rather than being lost. The
    // grain stays readable from memory until its GTE points at the compressed copy.
    await this.writeGrain(grain, p.seal());
    this.pending.delete(grain);
  }

  /** Compresses `data` (one grain, the last may be short), appends it and links its GTE. */
  async writeGrain(grain: number, data: Uint8Array): Promise<void> {
    const lba = (grain * this.grainSize) / VMDK_SECTOR_SIZE;
    const at = await this.sink.append(await encodeVmdkCompressedGrain(lba, data));
    await this.sink.link(grain, at / VMDK_SECTOR_SIZE);
  }

  /**
   * Copies `into.length` bytes from `inGrain` of the compressed grain at `host` (the GTE's
   * byte offset). Throws {@link CorruptImageError} when the grain does not decode or is short.
   */
  async read(host: number, inGrain: number, into: Uint8Array): Promise<void> {
    let g = this.decoded.get(host);
    if (!g) {
      g = await this.decode(host);
      this.decoded.set(host, g);
      if (this.decoded.size > DECODED_CACHE) this.decoded.delete(this.decoded.keys().next().value as number);
    }
    if (inGrain + into.length > g.length) {
      throw new CorruptImageError(
        `Cannot read vmdk image: the compressed grain at offset ${host} holds ${g.length} bytes, ${inGrain + into.length} needed`,
        { format: "vmdk", structure: "compressed grain", fileOffset: host, file: this.file.name },
      );
    }
    into.set(g.data.subarray(inGrain, inGrain + into.length));
  }

  private async decode(host: number): Promise<{ data: Uint8Array; length: number }> {
    let src: Uint8Array;
    if (this.markers) {
      // Only the size matters here (the lba is not checked, as in QEMU).
      const raw = await readExact(this.file, host, VmdkGrainMarkerCodec.size, "grain marker", "vmdk");
      const size = new DataView(raw.buffer, raw.byteOffset).getUint32(VmdkGrainMarkerCodec.offsetOf("size"), true);
      // A grain never compresses to more than twice its size (QEMU's bound too).
      if (size === 0 || size > 2 * this.grainSize) {
        throw new CorruptImageError(
          `Cannot read vmdk image: grain marker at offset ${host} gives a compressed size of ${size} bytes (1 to ${2 * this.grainSize} expected)`,
          { format: "vmdk", structure: "grain marker", fileOffset: host, file: this.file.name },
        );
      }
      src = await readExact(this.file, host + VmdkGrainMarkerCodec.size, size, "compressed grain", "vmdk");
    } else {
      const n = Math.min(2 * this.grainSize, (await this.file.size()) - host);
      if (n <= 0) {
        throw new CorruptImageError(`Cannot read vmdk image: compressed grain at offset ${host} is past the end of the file`, {
          format: "vmdk", structure: "compressed grain", fileOffset: host, file: this.file.name,
        });
      }
      src = await readExact(this.file, host, n, "compressed grain", "vmdk");
    }
    const data = new Uint8Array(this.grainSize);
    const length = await inflateVmdkGrain(src, data);
    if (length < 0) {
      throw new CorruptImageError(`Cannot read vmdk image: the compressed grain at offset ${host} does not decompress`, {
        format: "vmdk", structure: "compressed grain", fileOffset: host, file: this.file.name,
      });
    }
    return { data, length };
  }
}

/** The error for writes into a grain a stream already holds compressed. */
export function vmdkStreamOverwriteError(fileName: string, grain: number, grainSize: number): UnsupportedFeatureError {
  return new UnsupportedFeatureError(
    `Cannot write to grain ${grain} (guest offset ${grain * grainSize}) of streamOptimized image '${fileName}': ` +
      "a grain written compressed cannot be rewritten (QEMU refuses this too); convert the image to monolithicSparse to modify it",
    { format: "vmdk", structure: "grain table", file: fileName },
  );
}
