// A qcow2 made by qemu-img, served by a local HTTP server: read sequentially through openImage
// (the request count is the measure of read-ahead and coalescing), converted to a local file
// and compared by qemu-img, and opened by the CLI from a URL on its command line.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertImage, createImage, openImage } from "../../src/node.js";
import { vdisk } from "../cli/cli-helpers.js";
import { startHttpServer, type TestHttpServer } from "../helpers/http-server.js";
import { HAVE_QEMU, qemuImg, qemuImgStatus, tempDir, warnSkipped } from "../helpers/qemu.js";
import { pattern } from "../helpers/random.js";

const MIB = 1024 * 1024;
const SIZE = 256 * MIB;

describe.skipIf(!HAVE_QEMU)("HTTP qcow2 (qemu-img made)", () => {
  const tmp = tempDir("vdisk-http-");
  let server: TestHttpServer;
  let raw: Uint8Array;

  beforeAll(async () => {
    // Data everywhere but a hole in the middle (which qemu-img leaves unallocated).
    raw = pattern(SIZE, 5);
    raw.fill(0, 100 * MIB, 120 * MIB);
    writeFileSync(tmp.path("src.raw"), raw);
    qemuImg("convert", "-f", "raw", "-O", "qcow2", tmp.path("src.raw"), tmp.path("src.qcow2"));
    server = await startHttpServer(readFileSync(tmp.path("src.qcow2")), {
      "/base.qcow2": readFileSync(tmp.path("src.qcow2")),
    });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("reads 256 MiB sequentially in 64 KiB read() calls with at most ~1 request per MiB", async () => {
    const img = await openImage(server.url);
    expect(img.format).toBe("qcow2");
    const before = server.requests.length;
    const chunk = 64 * 1024;
    let mismatches = 0;
    for (let off = 0; off < SIZE; off += chunk) {
      const got = await img.read(off, chunk);
      if (!Buffer.from(got).equals(Buffer.from(raw.buffer, raw.byteOffset + off, chunk))) mismatches++;
    }
    await img.close();
    const requests = server.requests.length - before + 1; // + the opening request
    console.log(`HTTP sequential read of a 256 MiB qcow2 in 64 KiB reads: ${requests} requests (${(requests / 256).toFixed(2)} per MiB)`);
    expect(mismatches).toBe(0);
    expect(requests).toBeLessThanOrEqual(256);
  }, 120_000);

  it("convertImage from an HTTP qcow2 to a local qcow2 matches the source (qemu-img compare)", async () => {
    const before = server.requests.length;
    const src = await openImage(new URL(server.url));
    const dst = await createImage(tmp.path("out.qcow2"), { format: "qcow2", size: src.size });
    await convertImage(src, dst);
    const requests = server.requests.length - before;
    console.log(`convertImage of the 256 MiB HTTP qcow2 to a local qcow2: ${requests} requests`);
    expect(requests).toBeLessThanOrEqual(256);
    await dst.close();
    await src.close();
    const r = qemuImgStatus("compare", "-f", "raw", "-F", "qcow2", tmp.path("src.raw"), tmp.path("out.qcow2"));
    expect(r.stdout).toMatch(/Images are identical/);
    expect(r.status).toBe(0);
  }, 120_000);

  it("the CLI reads an http:// image named on its command line (info, convert)", async () => {
    const info = await vdisk("info", "--output=json", server.url);
    expect(info.status).toBe(0);
    const json = JSON.parse(info.stdout) as Record<string, unknown>;
    expect(json["format"]).toBe("qcow2");
    expect(json["virtual-size"]).toBe(SIZE);
    const conv = await vdisk("convert", "-O", "raw", server.url, tmp.path("cli.raw"));
    expect(conv.stderr).toBe("");
    expect(conv.status).toBe(0);
    expect(qemuImgStatus("compare", "-f", "raw", "-F", "raw", tmp.path("src.raw"), tmp.path("cli.raw")).status).toBe(0);
  }, 120_000);

  it("a backing file named inside an HTTP image opens on the same server only when the policy allows", async () => {
    // An overlay whose backing name is relative: it resolves against the overlay's URL.
    const overlay = tmp.path("overlay.qcow2");
    qemuImg("create", "-f", "qcow2", "-F", "qcow2", "-u", "-b", "base.qcow2", overlay, String(SIZE));
    const withOverlay = await startHttpServer(readFileSync(overlay), { "/base.qcow2": readFileSync(tmp.path("src.qcow2")) });
    try {
      await expect(openImage(withOverlay.url)).rejects.toMatchObject({ code: "ERR_OPEN_DENIED" });
      const img = await openImage(withOverlay.url, { backing: "same-dir" });
      expect(Buffer.from(await img.read(5 * MIB, 4096)).equals(Buffer.from(raw.subarray(5 * MIB, 5 * MIB + 4096)))).toBe(true);
      await img.close();
      expect(withOverlay.requests.some((r) => r.method === "GET" && r.range !== undefined)).toBe(true);
      // A protocol name inside an image is never opened, even by the CLI (policy 'any').
      qemuImg("create", "-f", "qcow2", "-F", "qcow2", "-u", "-b", "http://127.0.0.1:1/evil.qcow2", overlay, "1M");
      const evil = await startHttpServer(readFileSync(overlay));
      try {
        const r = await vdisk("map", "--output=json", evil.url);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/protocol names are not opened/);
      } finally {
        await evil.close();
      }
    } finally {
      await withOverlay.close();
    }
  }, 120_000);
});

if (!HAVE_QEMU) warnSkipped("HTTP qcow2 interop");
