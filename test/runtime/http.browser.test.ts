// HttpBackend in headless Chromium: the page opens a qcow2 fixture by URL from the test server
// (Range requests through the browser's fetch) and reads the same bytes as the raw fixture.
import { describe, expect, it } from "vitest";
import { HttpBackend, openImage } from "vdisk";

describe("HTTP in Chromium", () => {
  it("openImage(new URL(…)) reads a qcow2 over Range requests, read-only", async () => {
    const url = new URL("/test/fixtures/pattern.qcow2", location.href);
    const img = await openImage(url);
    expect(img.format).toBe("qcow2");
    expect(img.capabilities.write).toBe(false);
    const raw = new Uint8Array(await (await fetch("/test/fixtures/pattern.raw")).arrayBuffer());
    expect(img.size).toBe(raw.length);
    const got = await img.read(0, img.size);
    let diff = -1;
    for (let i = 0; i < raw.length && diff < 0; i++) if (got[i] !== raw[i]) diff = i;
    expect(diff).toBe(-1);
    await img.close();
  });

  it("HttpBackend.open reports the size and refuses writes", async () => {
    const io = await HttpBackend.open(new URL("/test/fixtures/pattern.raw", location.href));
    const raw = new Uint8Array(await (await fetch("/test/fixtures/pattern.raw")).arrayBuffer());
    expect(await io.size()).toBe(raw.length);
    await expect(io.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await io.close();
  });

  it("a string path is a TypeError that says what to pass", async () => {
    await expect(openImage("disk.qcow2" as never)).rejects.toThrow(/pass a Blob, File, URL or IoBackend/);
  });
});
