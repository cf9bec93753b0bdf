/**
 * The write side of stream-optimized extents, and the decoding of their grains.
 *
 * A compressed grain cannot be written in pieces, but engines and `convert` write in pieces.
 * So a grain being written lives in memory ("pending") until it is complete enough to be
 * flushed: when a few newer grains have started, or on `flush`/`close`. Then it is compressed,
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
import { MemoryBackend } from "../../io/memory.js";
import { encodeVmdkCompressedGrain, inflateVmdkGrain } from "./compressed-grain.js";
import { VMDK_SECTOR_SIZE, VmdkGrainMarkerCodec } from "./layout.js";

/** Grains kept in memory while being written before the oldest is compressed out. */
const MAX_PENDING = 4;
/** Decoded grains kept for reads that cover a grain in several requests. */
const DECODED_CACHE = 4;

interface Pending {
  readonly buffer: MemoryBackend;
  readonly length: number;
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
  private readonly pending = new Map<number, Pending>();
  private readonly decoded = new Map<number, { data: Uint8Array; length: number }>();

  constructor(
    private readonly file: IoBackend,
    private readonly grainSize: number,
    private readonly markers: boolean,
    private readonly sink: VmdkStreamSink,
  ) {}

  /** The mapping of a pending grain at `inGrain`, or undefined when `grain` is not pending. */
  pendingMapping(grain: number, inGrain: number, length: number): DataMapping | undefined {
    const p = this.pending.get(grain);
    if (!p) return undefined;
    return { kind: "data", file: p.buffer, fileOffset: inGrain, length: Math.min(length, p.length - inGrain) };
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

  /** A fresh in-memory grain of `length` bytes (zeros) named like the extent file. */
  newGrainBuffer(length: number): MemoryBackend {
    return new MemoryBackend(new Uint8Array(length), { name: this.file.name });
  }

  /** Makes `buffer` the pending contents of `grain`; the oldest pending grain may be written out. */
  async addPending(grain: number, buffer: MemoryBackend, length: number): Promise<void> {
    this.pending.set(grain, { buffer, length });
    while (this.pending.size > MAX_PENDING) {
      const oldest = this.pending.keys().next().value as number;
      await this.writeOut(oldest);
    }
  }

  /** Drops a pending grain (a whole-grain compressed write replaces it). */
  dropPending(grain: number): void {
    this.pending.delete(grain);
  }

  /** Compresses and appends every pending grain, in guest order. */
  async writeAllPending(): Promise<void> {
    for (const grain of [...this.pending.keys()].sort((a, b) => a - b)) await this.writeOut(grain);
  }

  private async writeOut(grain: number): Promise<void> {
    const p = this.pending.get(grain);
    if (!p) return;
    await this.writeGrain(grain, p.buffer.bytes().subarray(0, p.length));
    this.pending.delete(grain);
  }

  /** Compresses `data` (one grain, the last may be short), appends it and links its GTE. */
  async writeGrain(grain: number, data: Uint8Array): Promise<void> {
    const lba = (grain * this.grainSize) / VMDK_SECTOR_SIZE;
    const at = await this.sink.append(encodeVmdkCompressedGrain(lba, data));
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
    const length = inflateVmdkGrain(src, data);
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
