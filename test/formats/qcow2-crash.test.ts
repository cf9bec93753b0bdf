/**
 * Crash consistency of qcow2 writes: for every cut point of the write stream (and torn
 * multi-sector writes), the image opens, checks without corruptions, and all data flushed
 * before the crash reads back.
 */
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";
import { runCrashHarness } from "../helpers/crash-harness.js";

describe("qcow2 crash consistency", () => {
  const cases: Array<[string, number]> = [
    ["cluster_size=4k", 1 << 20],
    ["cluster_size=512,refcount_bits=64", 256 << 10],
    ["cluster_size=16k,extended_l2=on", 1 << 20],
    ["cluster_size=4k,lazy_refcounts=on", 1 << 20],
    ["compat=0.10,cluster_size=4k", 1 << 20],
  ];
  for (const [options, size] of cases) {
    it(`survives a crash at any write (-o ${options})`, async () => {
      const rep = await runCrashHarness({
        format: "qcow2",
        options,
        size,
        seed: options.length,
        operations: 24,
        maxLength: 20000,
        ops: ["write", "write", "zero", "discard", "compressed"],
        maxCuts: 1000,
      });
      expect(rep.mutations).toBeGreaterThan(20);
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.tornChecked).toBeGreaterThan(0);
    });
  }

  it("survives a crash at any write while the refcount table is relocated", async () => {
    // 512-byte clusters, 64-bit refcounts: one table cluster covers 2 MiB of host clusters.
    const mem = new MemoryBackend();
    const img0 = await createImageOn(mem, { format: "qcow2", size: 4 << 20, options: "cluster_size=512,refcount_bits=64" });
    const first = new Uint8Array(1900 << 10).fill(0x11);
    await img0.write(0, first);
    await img0.close();
    const base = mem.bytes().slice();
    const tableAt = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getBigUint64(48);
    const fault = FaultBackend.over(base);
    const img = await openImageOn(fault, { format: "qcow2" });
    await img.write(2 << 20, new Uint8Array(400 << 10).fill(0x22));
    await img.close();
    const end = await fault.replay({ ops: fault.mutationCount });
    expect(tableAt(end.bytes())).not.toBe(tableAt(base));
    // Every cut around the header switch (the table write, the switch, the old table's
    // release), every 8th elsewhere.
    let sw = -1;
    for (let i = 0; i < fault.mutationCount; i++) {
      const m = fault.mutation(i);
      if (m?.kind === "write" && m.offset === 48) sw = i;
    }
    expect(sw).toBeGreaterThan(0);
    for (let n = 0; n <= fault.mutationCount; n++) {
      if (Math.abs(n - sw) > 6 && n % 8 !== 0) continue;
      const crashed = await openImageOn(await fault.replay({ ops: n }), { format: "qcow2" });
      const c = await crashed.check();
      expect(c.corruptions, `cut ${n}: ${c.messages.join("; ")}`).toBe(0);
      const head = await crashed.read(0, first.length);
      expect(head.every((x) => x === 0x11), `cut ${n}`).toBe(true);
      await crashed.close();
    }
  });

  it("a failed write surfaces as an error and the image stays consistent", async () => {
    const base = new MemoryBackend();
    await (await createImageOn(base, { format: "qcow2", size: 1 << 20, options: "cluster_size=4k" })).close();
    const fault = FaultBackend.over(base.bytes());
    const img = await openImageOn(fault, { format: "qcow2" });
    await img.write(0, new Uint8Array(10000).fill(1));
    await img.flush();
    // The data write itself fails: the write rejects.
    fault.failFromWrite(fault.mutationCount);
    await expect(img.write(200000, new Uint8Array(50000).fill(2))).rejects.toMatchObject({ code: "ERR_IO" });
    // The data lands but the metadata (written back at flush) does not: the flush rejects.
    fault.failFromWrite(undefined);
    await img.write(400000, new Uint8Array(50000).fill(3));
    fault.failFromWrite(fault.mutationCount);
    await expect(img.flush()).rejects.toMatchObject({ code: "ERR_IO" });
    const after = await openImageOn(await fault.replay({ ops: fault.mutationCount }), { format: "qcow2" });
    const c = await after.check();
    expect(c.corruptions).toBe(0);
    expect(Array.from(await after.read(0, 4))).toEqual([1, 1, 1, 1]);
  });
});
