/**
 * qcow2 header bookkeeping: unknown extensions and compatible bits survive writes, unknown
 * autoclear bits are cleared by a writable open only, and the lazy-refcounts dirty bit is
 * set before the first allocating write and cleared by flush.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";

async function fresh(options = "cluster_size=4k"): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  await (await createImageOn(mem, { format: "qcow2", size: 1 << 20, options })).close();
  return mem.bytes().slice();
}

function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset).getBigUint64(at);
}

/** Inserts an extension record of `type` before the end marker of the extension area. */
function withExtension(b: Uint8Array, type: number, data: Uint8Array): Uint8Array {
  const out = b.slice();
  const dv = new DataView(out.buffer);
  let pos = dv.getUint32(100); // header_length
  while (dv.getUint32(pos) !== 0) pos += 8 + ((dv.getUint32(pos + 4) + 7) & ~7);
  dv.setUint32(pos, type);
  dv.setUint32(pos + 4, data.length);
  out.set(data, pos + 8);
  dv.setUint32(pos + 8 + ((data.length + 7) & ~7), 0);
  return out;
}

describe("qcow2 header bookkeeping", () => {
  it("keeps unknown header extensions and compatible bits across writes", async () => {
    const ext = new TextEncoder().encode("some future extension");
    let b = withExtension(await fresh(), 0x12345678, ext);
    new DataView(b.buffer).setBigUint64(80, 1n << 40n); // unknown compatible bit
    const mem = new MemoryBackend(b);
    const img = await openImageOn(mem, { format: "qcow2" });
    await img.write(12345, new Uint8Array(70000).fill(9));
    await img.close();
    b = mem.bytes();
    expect(Buffer.from(b).indexOf(Buffer.from(ext))).toBeGreaterThan(0);
    expect(u64(b, 80)).toBe(1n << 40n);
    const again = await openImageOn(new MemoryBackend(b.slice()), { format: "qcow2" });
    expect((await again.read(12345, 1))[0]).toBe(9);
    await again.close();
  });

  it("clears unknown autoclear bits on a writable open only", async () => {
    const b = await fresh();
    new DataView(b.buffer).setBigUint64(88, (1n << 7n) | (1n << 33n));
    const ro = new MemoryBackend(b.slice());
    await (await openImageOn(ro, { format: "qcow2", readOnly: true })).close();
    expect(u64(ro.bytes(), 88)).toBe((1n << 7n) | (1n << 33n));
    const rw = new MemoryBackend(b.slice());
    await (await openImageOn(rw, { format: "qcow2" })).close();
    expect(u64(rw.bytes(), 88)).toBe(0n);
  });

  it("with lazy refcounts, sets the dirty bit before the first allocation and clears it on flush", async () => {
    const mem = new MemoryBackend(await fresh("cluster_size=4k,lazy_refcounts=on"));
    const img = await openImageOn(mem, { format: "qcow2" });
    expect(u64(mem.bytes(), 72) & 1n).toBe(0n);
    await img.write(0, new Uint8Array(5000).fill(1));
    expect(u64(mem.bytes(), 72) & 1n).toBe(1n);
    expect((await img.info()).dirty).toBe(true);
    await img.flush();
    expect(u64(mem.bytes(), 72) & 1n).toBe(0n);
    // A later write sets it again; close clears it.
    await img.write(100000, new Uint8Array(10).fill(2));
    expect(u64(mem.bytes(), 72) & 1n).toBe(1n);
    await img.close();
    expect(u64(mem.bytes(), 72) & 1n).toBe(0n);
  });

  it("with lazy refcounts, an overwrite in place changes no metadata and leaves the bit clear", async () => {
    const mem = new MemoryBackend(await fresh("cluster_size=4k,lazy_refcounts=on"));
    const img = await openImageOn(mem, { format: "qcow2" });
    await img.write(0, new Uint8Array(4096).fill(1));
    await img.flush();
    expect(u64(mem.bytes(), 72) & 1n).toBe(0n);
    await img.write(10, new Uint8Array(10).fill(2));
    expect(u64(mem.bytes(), 72) & 1n).toBe(0n);
    await img.close();
  });

  it("a writable open of a dirty image rebuilds refcounts and clears the bit; read-only leaves it", async () => {
    // Simulate a crash after the metadata was written back but before the dirty bit was
    // cleared: keep the file's bytes as they were at the last flush that saw the bit set.
    let crashed = new Uint8Array(0);
    const mem = new (class extends MemoryBackend {
      override async flush(): Promise<void> {
        if (u64(this.bytes(), 72) & 1n) crashed = this.bytes().slice();
        await super.flush();
      }
    })(await fresh("cluster_size=4k,lazy_refcounts=on"));
    const img = await openImageOn(mem, { format: "qcow2" });
    await img.write(0, new Uint8Array(50000).fill(3));
    await img.flush();
    expect(crashed.length).toBeGreaterThan(0);
    // Then wipe the refcount block.
    crashed.fill(0, 2 * 4096 + 8, 3 * 4096);
    const ro = await openImageOn(new MemoryBackend(crashed.slice()), { format: "qcow2", readOnly: true });
    expect((await ro.info()).dirty).toBe(true);
    expect((await ro.check()).corruptions).toBeGreaterThan(0);
    expect((await ro.read(0, 1))[0]).toBe(3);
    await ro.close();
    const warnings: string[] = [];
    const rw = await openImageOn(new MemoryBackend(crashed.slice()), { format: "qcow2", warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/dirty/);
    expect((await rw.info()).dirty).toBe(false);
    const c = await rw.check();
    expect(c.corruptions + c.leaks, c.messages.join("\n")).toBe(0);
    expect((await rw.read(49999, 1))[0]).toBe(3);
    await rw.close();
  });
});
