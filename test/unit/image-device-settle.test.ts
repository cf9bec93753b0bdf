/**
 * A request that fails must not leave an internal read behind that rejects later with nobody
 * waiting on it (under Node's defaults that ends the process even though the caller caught the
 * first error), nor one that still writes into the caller's buffer after the rejection.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ImageDevice } from "../../src/core/image-device.js";
import type { FormatInstance } from "../../src/core/format.js";
import type { Mapping } from "../../src/core/mapping.js";
import { CorruptImageError, ImageError, isImageError } from "../../src/errors.js";
import { MemoryBackend } from "../../src/io/memory.js";
import { tsKernel } from "../../src/kernel/ts-kernel.js";

/** A file whose reads fail (or finish) only after `delayMs`. */
class SlowBackend extends MemoryBackend {
  constructor(private readonly delayMs: number, private readonly fail: boolean) {
    super(new Uint8Array(4096).fill(7));
  }
  override async read(offset: number, into: Uint8Array): Promise<number> {
    await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw new ImageError("ERR_IO", "slow read failed");
    return super.read(offset, into);
  }
}

/** Maps [0, 512) to the slow file and throws for anything after (as a corrupt L1 entry). */
function instance(file: MemoryBackend): FormatInstance {
  return {
    format: "test",
    size: 1024,
    allocationUnit: 512,
    getMapping(offset: number): Promise<Mapping> {
      if (offset < 512) return Promise.resolve({ kind: "data", file, fileOffset: 0, length: 512 - offset });
      return Promise.reject(new CorruptImageError("L1 entry 1 has reserved bits set", { format: "test" }));
    },
    flush: () => Promise.resolve(),
    info: () => Promise.resolve({} as never),
    close: () => Promise.resolve(),
  };
}

describe("ImageDevice.read settles every internal read", () => {
  const seen: unknown[] = [];
  const trap = (e: unknown): void => void seen.push(e);
  beforeEach(() => {
    seen.length = 0;
    process.on("unhandledRejection", trap);
  });
  afterEach(() => void process.off("unhandledRejection", trap));

  it("read() rejects with the mapping error and leaves no rejection unobserved", async () => {
    const dev = new ImageDevice(instance(new SlowBackend(30, true)), { readOnly: true, kernel: tsKernel, name: "t" });
    const e = await dev.read(0, 1024).catch((x: unknown) => x);
    expect(isImageError(e) && (e as ImageError).code).toBe("ERR_CORRUPT_IMAGE");
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual([]);
  });

  it("read() returns only after the in-flight read stopped writing into the buffer", async () => {
    const dev = new ImageDevice(instance(new SlowBackend(30, false)), { readOnly: true, kernel: tsKernel, name: "t" });
    const buf = new Uint8Array(1024);
    await dev.readInto(0, buf).catch(() => {});
    const snapshot = buf.slice();
    await new Promise((r) => setTimeout(r, 100));
    expect(buf).toEqual(snapshot);
    expect(buf[0]).toBe(7);
  });
});
