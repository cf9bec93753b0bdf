/**
 * Parallels under a volatile disk cache: a cluster freed by a discard and reused for another
 * guest cluster holds the old bytes until the new data lands, so the data is flushed before
 * the catalog entry. Whatever subset of the later writes the cache keeps, the new guest
 * cluster reads its new data or zeros, never the discarded cluster's bytes.
 */
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";

const CS = 65536;

describe("parallels with a volatile write cache", () => {
  it("a reused cluster's data is durable before its catalog entry", async () => {
    const mem = new MemoryBackend();
    const img0 = await createImageOn(mem, { format: "parallels", size: 16 * CS, options: "cluster_size=64k" });
    await img0.write(0, new Uint8Array(2 * CS).fill(0xaa));
    await img0.close();
    const fault = FaultBackend.over(mem.bytes().slice());
    const img = await openImageOn(fault, { format: "parallels" });
    await img.discard(0, CS);
    await img.flush();
    const durable = fault.mutationCount;
    await img.write(5 * CS + 512, new Uint8Array(1024).fill(0x55));
    await img.close();
    const points = fault.flushPoints().filter((p) => p > durable);
    const end = points[0] ?? fault.mutationCount;
    const count = end - durable;
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(12);
    for (let mask = 0; mask < 1 << count; mask++) {
      const keep = new Set<number>();
      for (let b = 0; b < count; b++) if (mask & (1 << b)) keep.add(durable + b);
      const crashed = await openImageOn(await fault.replaySubset({ durable, keep }), { format: "parallels" });
      const got = await crashed.read(5 * CS, CS);
      const bad = got.findIndex((x) => x === 0xaa);
      expect(bad, `kept [${[...keep]}]: the discarded cluster's bytes show at ${bad}`).toBe(-1);
      expect(got[0]).toBe(0);
      await crashed.close();
    }
  });
});
