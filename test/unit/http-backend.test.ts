// HttpBackend against a local node:http server: bytes equal the file's at random offsets, and
// every misbehaving server (no ranges, compression, failures, a changing file, short bodies)
// gives a clear HttpError instead of wrong bytes.
import { afterEach, describe, expect, it } from "vitest";
import { HttpBackend, HttpError, MemoryBackend, createImage, openImage } from "../../src/node.js";
import { startHttpServer, type TestHttpServer } from "../helpers/http-server.js";
import { pattern as randomBytes, rng as seededRandom } from "../helpers/random.js";

let server: TestHttpServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const KIB = 1024;
const MIB = 1024 * KIB;

async function readAt(io: HttpBackend, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  const n = await io.read(offset, buf);
  return buf.subarray(0, n);
}

describe("HttpBackend", () => {
  it("read() returns the file's bytes at random offsets, short only at the end", async () => {
    const file = randomBytes(3 * MIB + 12345, 7);
    server = await startHttpServer(file);
    const io = await HttpBackend.open(server.url, { cacheBytes: 1 * MIB, blockSize: 16 * KIB });
    expect(await io.size()).toBe(file.length);
    const rnd = seededRandom(11);
    for (let i = 0; i < 200; i++) {
      const offset = Math.floor(rnd() * file.length);
      const length = 1 + Math.floor(rnd() * 300 * KIB);
      const want = file.subarray(offset, Math.min(file.length, offset + length));
      expect(Buffer.from(await readAt(io, offset, length)).equals(Buffer.from(want))).toBe(true);
    }
    expect((await readAt(io, file.length, 10)).length).toBe(0);
    expect((await readAt(io, file.length - 3, 10)).length).toBe(3);
    await io.close();
  });

  it("a sequential run is read with few, growing requests; neighbours are merged", async () => {
    const file = randomBytes(16 * MIB, 3);
    server = await startHttpServer(file);
    const io = await HttpBackend.open(server.url);
    const out = new Uint8Array(file.length);
    for (let off = 0; off < file.length; off += 64 * KIB) {
      expect(await io.read(off, out.subarray(off, off + 64 * KIB))).toBe(64 * KIB);
    }
    expect(Buffer.from(out).equals(Buffer.from(file))).toBe(true);
    // 256 reads of 64 KiB; read-ahead reaches 8 MiB windows, so a handful of requests do it.
    expect(io.stats.requests).toBeLessThanOrEqual(16);
    expect(io.stats.bytesFetched).toBeLessThanOrEqual(file.length + 8 * MIB);
    await io.close();
  });

  it("opens with HEAD when asked, and sends the strong ETag as If-Range", async () => {
    server = await startHttpServer(randomBytes(300 * KIB, 5));
    const io = await HttpBackend.open(server.url, { probe: "head" });
    expect(server.requests[0]!.method).toBe("HEAD");
    await readAt(io, 100 * KIB, 10);
    const get = server.requests.find((r) => r.method === "GET")!;
    expect(get.ifRange).toBe(io.validators.etag);
    expect(get.headers["accept-encoding"]).toMatch(/^identity/);
    await io.close();
  });

  it("passes the caller's headers (credentials) on every request", async () => {
    server = await startHttpServer(randomBytes(200 * KIB, 5));
    const io = await HttpBackend.open(server.url, { headers: { authorization: "Bearer t0ken" } });
    await readAt(io, 150 * KIB, 10);
    expect(server.requests.length).toBeGreaterThanOrEqual(2);
    for (const r of server.requests) expect(r.headers.authorization).toBe("Bearer t0ken");
    await io.close();
  });

  it("uses an injected fetch", async () => {
    server = await startHttpServer(randomBytes(100 * KIB, 9));
    let calls = 0;
    const io = await HttpBackend.open(server.url, { fetch: (u, init) => (calls++, fetch(u, init)) });
    await readAt(io, 70 * KIB, 10);
    expect(calls).toBe(2);
    await io.close();
  });

  it("retries 503s and dropped connections with backoff", async () => {
    const file = randomBytes(1 * MIB, 13);
    server = await startHttpServer(file);
    server.behaviour.fail503 = 2;
    const io = await HttpBackend.open(server.url, { retryDelayMs: 1 });
    expect(io.stats.retries).toBe(2);
    server.behaviour.drop = 2;
    const got = await readAt(io, 500 * KIB, 100 * KIB);
    expect(Buffer.from(got).equals(Buffer.from(file.subarray(500 * KIB, 600 * KIB)))).toBe(true);
    expect(io.stats.retries).toBe(4);
    await io.close();
  });

  it("gives up after the retries with an HttpError naming the status", async () => {
    server = await startHttpServer(randomBytes(1 * MIB, 13));
    server.behaviour.fail503 = 100;
    const e = await HttpBackend.open(server.url, { retries: 2, retryDelayMs: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).status).toBe(503);
    expect((e as HttpError).code).toBe("ERR_IO");
    expect(server.requests.length).toBe(3);
  });

  it("keeps at most `concurrency` requests in flight", async () => {
    const file = randomBytes(8 * MIB, 17);
    server = await startHttpServer(file);
    server.behaviour.delayMs = 30;
    const io = await HttpBackend.open(server.url, { concurrency: 3 });
    // Twenty reads far apart (no read-ahead), all at once.
    const offsets = Array.from({ length: 20 }, (_, i) => i * 400 * KIB + 1000);
    const got = await Promise.all(offsets.map((o) => readAt(io, o, 5000)));
    got.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(file.subarray(offsets[i]!, offsets[i]! + 5000)))).toBe(true));
    expect(server.maxInFlight).toBe(3);
    await io.close();
  });

  it("an aborted signal stops the backend: later reads reject with its reason", async () => {
    server = await startHttpServer(randomBytes(2 * MIB, 17));
    const ac = new AbortController();
    const io = await HttpBackend.open(server.url, { signal: ac.signal });
    server.behaviour.delayMs = 2000;
    const pending = readAt(io, 1 * MIB, 10);
    ac.abort(new Error("stop"));
    await expect(pending).rejects.toThrow("stop");
    await expect(readAt(io, 0, 10)).rejects.toThrow("stop");
  });

  for (const validator of ["etag", "last-modified", "none"] as const) {
    it(`a file that changes mid-read is an error, never mixed data (validator: ${validator})`, async () => {
      const a = randomBytes(4 * MIB, 21);
      server = await startHttpServer(a);
      if (validator === "last-modified") server.behaviour.noEtag = true;
      // With no validator only the length can tell: the new version has another length.
      const b = validator === "none" ? randomBytes(4 * MIB + 512, 22) : randomBytes(4 * MIB, 22);
      if (validator === "none") server.behaviour.noValidators = true;
      const io = await HttpBackend.open(server.url);
      expect(Buffer.from(await readAt(io, 0, 1000)).equals(Buffer.from(a.subarray(0, 1000)))).toBe(true);
      server.setFile(b);
      const e = await readAt(io, 2 * MIB, 1000).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HttpError);
      expect((e as Error).message).toMatch(/changed while it was being read/);
      // And it stays failed: nothing of the new version is ever returned.
      await expect(readAt(io, 3 * MIB, 10)).rejects.toBeInstanceOf(HttpError);
      await io.close();
    });
  }

  it("a server without Range support is a clear error at open", async () => {
    server = await startHttpServer(randomBytes(1 * MIB, 1));
    server.behaviour.noRanges = true;
    await expect(HttpBackend.open(server.url)).rejects.toThrow(/does not support Range requests/);
    await expect(HttpBackend.open(server.url, { probe: "head" })).rejects.toThrow(/Accept-Ranges/);
  });

  it("a Content-Encoding that changes the bytes is a clear error", async () => {
    server = await startHttpServer(randomBytes(1 * MIB, 1));
    server.behaviour.gzip = true;
    await expect(HttpBackend.open(server.url)).rejects.toThrow(/Content-Encoding 'gzip'/);
  });

  it("a body shorter than its Content-Range is an error", async () => {
    server = await startHttpServer(randomBytes(1 * MIB, 1));
    server.behaviour.shortBody = true;
    await expect(HttpBackend.open(server.url, { retries: 1, retryDelayMs: 1 })).rejects.toThrow(/asked for 65536 bytes, the server sent 65535/);
  });

  it("404 and a non-http URL are clear errors; close() fails later reads", async () => {
    server = await startHttpServer(randomBytes(100, 1), {});
    const fetch404 = () => Promise.resolve(new Response("no", { status: 404, statusText: "Not Found" }));
    await expect(HttpBackend.open(server.url, { fetch: fetch404 })).rejects.toThrow(/404 Not Found: no such file/);
    await expect(HttpBackend.open("file:///etc/passwd")).rejects.toBeInstanceOf(TypeError);
    const io = await HttpBackend.open(server.url);
    await io.close();
    await expect(readAt(io, 0, 10)).rejects.toMatchObject({ code: "ERR_CLOSED" });
  });

  it("refuses a Content-Range that is not the range asked for", async () => {
    const lying = () =>
      Promise.resolve(new Response(new Uint8Array(10), { status: 206, headers: { "content-range": "bytes 0-9/99999999999999999" } }));
    await expect(HttpBackend.open("http://127.0.0.1:1/x", { fetch: lying })).rejects.toThrow(/unusable Content-Range/);
  });

  it("an empty file opens with size 0", async () => {
    server = await startHttpServer(new Uint8Array(0));
    const io = await HttpBackend.open(server.url);
    expect(await io.size()).toBe(0);
    await io.close();
  });

  it("openImage(url) and openImage(new URL(...)) open an image read-only", async () => {
    const mem = new MemoryBackend();
    const dev = await createImage(mem, { format: "qcow2", size: 8 * MIB });
    const data = randomBytes(3 * MIB, 99);
    await dev.write(1 * MIB, data);
    await dev.close();
    server = await startHttpServer(mem.bytes().slice());
    for (const source of [server.url, new URL(server.url)]) {
      const img = await openImage(source);
      expect(img.format).toBe("qcow2");
      expect(img.capabilities.write).toBe(false);
      expect(Buffer.from(await img.read(1 * MIB, data.length)).equals(Buffer.from(data))).toBe(true);
      await img.close();
    }
  });
});
