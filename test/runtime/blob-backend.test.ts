// BlobBackend and blobFileOpener on Node's Blob/File (the same Web APIs Chromium runs them on in
// scenario.browser.test.ts).
import { describe, expect, it } from "vitest";
import { BlobBackend } from "../../src/adapters/browser/blob-backend.js";
import { blobFileOpener } from "../../src/adapters/browser/blob-opener.js";
import type { IoBackend } from "../../src/io/backend.js";
import { MemoryBackend } from "../../src/io/memory.js";

const bytes = Uint8Array.from({ length: 10000 }, (_, i) => (i * 31 + 7) & 0xff);

describe("BlobBackend", () => {
  it("read() returns the bytes at an offset, short at the end of the Blob, 0 past it", async () => {
    const io = new BlobBackend(new Blob([bytes]));
    const into = new Uint8Array(300);
    expect(await io.read(1234, into)).toBe(300);
    expect(into).toEqual(bytes.subarray(1234, 1534));
    expect(await io.read(9900, into)).toBe(100);
    expect(into.subarray(0, 100)).toEqual(bytes.subarray(9900));
    expect(await io.read(10000, into)).toBe(0);
    expect(await io.read(20000, into)).toBe(0);
    expect(await io.size()).toBe(10000);
  });

  it("is read-only and named after its File", async () => {
    // Through the interface, as the engine calls it: the class declares write/truncate without
    // parameters since it ignores them.
    const io: IoBackend = new BlobBackend(new File([bytes], "disk.img"));
    expect(io.name).toBe("disk.img");
    expect(io.capabilities.writable).toBe(false);
    await expect(io.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(io.truncate(0)).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    expect(new BlobBackend(new Blob([])).name).toBe("blob");
  });

  it("fails with ERR_CLOSED after close()", async () => {
    const io = new BlobBackend(new Blob([bytes]));
    await io.close();
    await expect(io.read(0, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_CLOSED" });
  });
});

describe("blobFileOpener", () => {
  const relativeTo = new MemoryBackend(new Uint8Array(0), { name: "top.qcow2" });
  const req = (name: string, writable = false) => ({ name, relativeTo, writable, purpose: "backing" });

  it("finds a File by the stored name, then by its last path component", async () => {
    const open = blobFileOpener([new File([bytes], "base.raw"), new File([new Uint8Array(5)], "other.raw")]);
    expect((await open(req("base.raw"))).name).toBe("base.raw");
    const viaDir = await open(req("../images/base.raw"));
    expect(viaDir.name).toBe("base.raw");
    expect(await viaDir.size()).toBe(10000);
    expect(await (await open(req("C:\\vm\\other.raw"))).size()).toBe(5);
  });

  it("accepts a name → Blob record and refuses unknown names and writes", async () => {
    const open = blobFileOpener({ "dir/base.raw": new Blob([bytes]) });
    expect((await open(req("dir/base.raw"))).name).toBe("dir/base.raw");
    await expect(open(req("missing.raw"))).rejects.toMatchObject({ code: "ERR_IO" });
    await expect(open(req("dir/base.raw", true))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
  });
});
