/**
 * The streaming layer's contract, independent of any format's layout: abort, backpressure,
 * progress, sink errors, deviceStream and convertToBlob.
 */
import { PassThrough, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  MemoryBackend,
  convertToBlob,
  convertToStream,
  createImage,
  deviceStream,
  openImage,
  openImageOn,
  type BlockDevice,
} from "../../src/index.js";

const MIB = 1 << 20;

/** A raw disk in memory of `size` bytes whose byte i is (i * 7 + i >> 12) & 0xff, except a zero hole. */
async function patternDisk(size: number): Promise<{ dev: BlockDevice; bytes: Uint8Array }> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >> 12)) & 0xff;
  bytes.fill(0, Math.floor(size / 3), Math.floor(size / 3) + MIB);
  const dev = await openImage(new MemoryBackend(bytes.slice()), { format: "raw", readOnly: true });
  return { dev, bytes };
}

/** Counts the bytes read from `dev`. */
function counting(dev: BlockDevice): { dev: BlockDevice; read(): number } {
  let n = 0;
  const wrapped = Object.create(dev) as BlockDevice;
  wrapped.readInto = async (offset, into) => {
    n += into.length;
    return dev.readInto(offset, into);
  };
  return { dev: wrapped, read: () => n };
}

/** Byte equality without vitest's element-wise diff (slow on MiBs). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream as unknown as AsyncIterable<Uint8Array>) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("convertToStream", () => {
  it("writes raw to a WritableStream byte-identical to the disk, with monotonic progress from 0 to total", async () => {
    const { dev, bytes } = await patternDisk(5 * MIB + 512);
    const parts: Uint8Array[] = [];
    const seen: Array<{ done: number; total: number }> = [];
    const r = await convertToStream(dev, new WritableStream({ write: (c) => void parts.push(c) }), {
      format: "raw",
      onProgress: (p) => seen.push({ ...p }),
    });
    const out = new Uint8Array(r.bytesWritten);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    expect(at).toBe(bytes.length);
    expect(same(out, bytes)).toBe(true);
    expect(seen[0]!.done).toBe(0);
    expect(seen[seen.length - 1]!.done).toBe(seen[0]!.total);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.done).toBeGreaterThanOrEqual(seen[i - 1]!.done);
  });

  it("stops reading while the sink pushes back: a stalled sink holds the source to a few MiB", async () => {
    const { dev } = await patternDisk(64 * MIB);
    const c = counting(dev);
    const ac = new AbortController();
    const stalled = new WritableStream<Uint8Array>({ write: () => new Promise<void>(() => {}) });
    const run = convertToStream(c.dev, stalled, { format: "qcow2", sparseSize: 0, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 300));
    expect(c.read()).toBeLessThanOrEqual(12 * MIB);
    ac.abort();
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
  });

  it("aborting half-way rejects with AbortError and aborts the WritableStream (its reader sees an error)", async () => {
    const { dev } = await patternDisk(32 * MIB);
    const ac = new AbortController();
    let received = 0;
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const reader = (async () => {
      for await (const chunk of readable as unknown as AsyncIterable<Uint8Array>) {
        received += chunk.length;
        if (received >= 4 * MIB) ac.abort();
      }
    })();
    await expect(convertToStream(dev, writable, { format: "qcow2", sparseSize: 0, signal: ac.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
    await expect(reader).rejects.toMatchObject({ name: "AbortError" });
  });

  it("aborting destroys a Node Writable with the error", async () => {
    const { dev } = await patternDisk(32 * MIB);
    const ac = new AbortController();
    const sink = new PassThrough();
    let got = 0;
    let sinkError: unknown;
    sink.on("data", (c: Buffer) => {
      got += c.length;
      if (got >= 2 * MIB) ac.abort(new DOMException("stop", "AbortError"));
    });
    sink.on("error", (e) => (sinkError = e));
    await expect(convertToStream(dev, sink, { format: "raw", signal: ac.signal })).rejects.toMatchObject({ name: "AbortError", message: "stop" });
    expect(sink.destroyed).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(sinkError).toMatchObject({ name: "AbortError" });
  });

  it("resolves only once a Node Writable has finished, and rejects with the sink's own error", async () => {
    const { dev, bytes } = await patternDisk(3 * MIB);
    let finished = false;
    const parts: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        parts.push(chunk);
        setTimeout(cb, 1);
      },
      final(cb) {
        setTimeout(() => {
          finished = true;
          cb();
        }, 20);
      },
    });
    await convertToStream(dev, sink, { format: "raw" });
    expect(finished).toBe(true);
    expect(same(Buffer.concat(parts), bytes)).toBe(true);

    const broken = new Writable({ write: (_c, _e, cb) => cb(new Error("disk full")) });
    await expect(convertToStream(dev, broken, { format: "raw" })).rejects.toThrow("disk full");
  });

  it("an error of the source rejects and errors the sink", async () => {
    const { dev } = await patternDisk(8 * MIB);
    const failing = Object.create(dev) as BlockDevice;
    failing.readInto = async () => {
      throw new Error("read failed");
    };
    let aborted: unknown;
    await expect(
      convertToStream(failing, new WritableStream({ abort: (r) => void (aborted = r) }), { format: "qcow2" }),
    ).rejects.toThrow("read failed");
    expect(aborted).toMatchObject({ message: "read failed" });
  });
});

describe("convertToBlob", () => {
  it("returns a Blob that opens as the image, with the disk's contents", async () => {
    const { dev, bytes } = await patternDisk(4 * MIB + 4096);
    const blob = await convertToBlob(dev, { format: "qcow2" });
    const img = await openImage(new MemoryBackend(new Uint8Array(await blob.arrayBuffer())), { readOnly: true });
    expect(img.format).toBe("qcow2");
    expect(same(await img.read(0, img.size), bytes)).toBe(true);
    await img.close();
  });
});

describe("deviceStream", () => {
  it("streams the guest bytes of a range in chunks of chunkSize, zeros included", async () => {
    const { dev, bytes } = await patternDisk(3 * MIB);
    const chunks: number[] = [];
    const s = deviceStream(dev, { start: 1000, end: 2 * MIB + 7, chunkSize: 256 * 1024 });
    const parts: Uint8Array[] = [];
    for await (const c of s as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(c.length);
      parts.push(c);
    }
    expect(chunks.slice(0, -1).every((n) => n === 256 * 1024)).toBe(true);
    const all = await collect(deviceStream(dev));
    expect(same(all, bytes)).toBe(true);
    expect(same(Buffer.concat(parts), bytes.subarray(1000, 2 * MIB + 7))).toBe(true);
  });

  it("reads only as the consumer pulls, and cancelling stops the reads", async () => {
    const { dev } = await patternDisk(16 * MIB);
    const c = counting(dev);
    const reader = deviceStream(c.dev, { chunkSize: MIB }).getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 50));
    expect(c.read()).toBeLessThanOrEqual(3 * MIB);
    await reader.cancel();
    const after = c.read();
    await new Promise((r) => setTimeout(r, 50));
    expect(c.read()).toBe(after);
  });

  it("ImageDevice.stream() is deviceStream of the image", async () => {
    const bytes = new Uint8Array(300000).map((_, i) => i % 251);
    // openImageOn: the engine's own type (openImage returns the BlockDevice interface).
    const img = await openImageOn(new MemoryBackend(bytes.slice()), { format: "raw", readOnly: true });
    expect(same(await collect(img.stream({ start: 5, chunkSize: 4096 })), bytes.subarray(5))).toBe(true);
    await img.close();
  });

  it("refuses a range outside the disk", async () => {
    const dev = await createImage(new MemoryBackend(), { format: "raw", size: 4096 });
    expect(() => deviceStream(dev, { end: 8192 })).toThrow(RangeError);
    expect(() => deviceStream(dev, { start: 10, end: 5 })).toThrow(RangeError);
    expect(() => deviceStream(dev, { chunkSize: 0 })).toThrow(RangeError);
  });
});
