/**
 * raw: the file is the disk. Every guest byte maps to the same file offset.
 * @module
 */
import type { CreateContext, FormatDriver, FormatInfo, FormatInstance, OpenContext } from "../../core/format.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import { roundUp, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import type { IoBackend } from "../../io/backend.js";
import { rawSequentialWriter } from "./sequential-writer.js";

class RawInstance implements FormatInstance {
  readonly format = "raw";
  readonly allocationUnit = 512;
  /** Every offset is the file's own: writes never allocate. */
  readonly allocatesOnWrite = false;
  /** Any byte count, as qemu-img's raw. */
  readonly resizeAlignment = 1;
  constructor(
    private readonly file: IoBackend,
    public size: number,
  ) {}

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    return { kind: "data", length: Math.min(length, this.size - offset), file: this.file, fileOffset: offset };
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    return {
      mapping: { kind: "data", length, file: this.file, fileOffset: offset },
      commit: async () => {},
    };
  }

  /** The file is the disk: its length is the size (any byte count, as qemu-img's raw). */
  async resize(newSize: number): Promise<void> {
    await this.file.truncate(newSize);
    await this.file.flush();
    this.size = newSize;
  }

  async flush(): Promise<void> {
    if (this.file.capabilities.writable) await this.file.flush();
  }

  async info(): Promise<FormatInfo> {
    return {};
  }

  /** Flushes and closes the file: the device owns it (an NBD connection would otherwise stay open). */
  async close(): Promise<void> {
    try {
      if (this.file.capabilities.writable) await this.file.flush();
    } finally {
      await this.file.close();
    }
  }
}

/**
 * qemu-img measure for raw: the file is as long as the disk (rounded up to whole 512-byte
 * sectors, as qemu-img sizes disks), whatever the source holds: unallocated sectors count too.
 */
function measureRaw(input: MeasureInput): MeasureResult {
  const bytes = roundUp(input.size, 512);
  return { required: bytes, fullyAllocated: bytes };
}

/** The raw format driver. Probes with the lowest score so any other format wins. */
export const rawDriver: FormatDriver = {
  name: "raw",
  fallback: true,
  createOptions: [
    { name: "preallocation", type: "enum", values: ["off", "falloc", "full"], help: "Preallocation mode", defaultText: "off" },
  ],
  // qemu-img measure takes any preallocation text for raw (the file protocol's option).
  measureOptions: [{ name: "preallocation", type: "string", help: "Preallocation mode", defaultText: "off" }],
  measure: measureRaw,
  probe: () => 1,
  sequentialWriter: rawSequentialWriter,
  async open(ctx: OpenContext): Promise<FormatInstance> {
    return new RawInstance(ctx.file, await ctx.file.size());
  },
  async create(ctx: CreateContext): Promise<void> {
    await ctx.file.truncate(ctx.size);
    if (ctx.options.preallocation === "full") {
      const chunk = new Uint8Array(Math.min(ctx.size, 1 << 20));
      for (let pos = 0; pos < ctx.size; pos += chunk.length) {
        await ctx.file.write(pos, chunk.subarray(0, Math.min(chunk.length, ctx.size - pos)));
      }
    }
    await ctx.file.flush();
  },
};
