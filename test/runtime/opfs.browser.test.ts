// OpfsBackend in headless Chromium: the async FileSystemFileHandle path on the page, the sync
// access handle path in a dedicated worker; images created there reopen with the same bytes.
import { describe, expect, it } from "vitest";
import { OpfsBackend, checkImage, convertImage, createImage, openImage } from "vdisk";

async function fileHandle(name: string): Promise<FileSystemFileHandle> {
  const root = await navigator.storage.getDirectory();
  return root.getFileHandle(name, { create: true });
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((i * 131 + seed * 17) ^ (i >> 9)) & 0xff || 1;
  return out;
}

describe("OPFS in Chromium", () => {
  it("OpfsBackend (async handle): writes are read back before and after flush, and persist", async () => {
    const handle = await fileHandle("async-backend.bin");
    const io = await OpfsBackend.open(handle, { truncate: true });
    expect(io.synchronous).toBe(false);
    await io.write(1000, pattern(5000, 1));
    const before = new Uint8Array(6000);
    expect(await io.read(0, before)).toBe(6000);
    expect(before.subarray(0, 1000).every((b) => b === 0)).toBe(true);
    expect(before.subarray(1000).every((b, i) => b === pattern(5000, 1)[i])).toBe(true);
    await io.flush();
    await io.truncate(3000);
    expect(await io.size()).toBe(3000);
    await io.close();
    const file = await handle.getFile();
    expect(file.size).toBe(3000);
    const bytes = new Uint8Array(await file.arrayBuffer());
    expect(bytes.subarray(1000).every((b, i) => b === pattern(5000, 1)[i])).toBe(true);
  });

  it("createImage(handle) makes a qcow2 in OPFS that openImage(handle) reopens with the same bytes", async () => {
    const handle = await fileHandle("page.qcow2");
    const img = await createImage(handle, { format: "qcow2", size: 16 << 20 });
    const data = pattern(3 << 20, 2);
    await img.write(5 << 20, data);
    await img.close();
    const again = await openImage(handle);
    expect(again.format).toBe("qcow2");
    expect(again.capabilities.write).toBe(true);
    const back = await again.read(5 << 20, data.length);
    expect(back.every((b, i) => b === data[i])).toBe(true);
    const check = await checkImage(again);
    expect(check.supported && check.result.corruptions).toBe(0);
    await again.close();
  });

  it("convertImage from a dropped File into OPFS", async () => {
    const raw = new Uint8Array(await (await fetch("/test/fixtures/pattern.raw")).arrayBuffer());
    const src = await openImage(new File([raw], "pattern.raw"), { format: "raw" });
    const handle = await fileHandle("converted.vmdk");
    const dst = await createImage(handle, { format: "vmdk", size: src.size });
    await convertImage(src, dst);
    await dst.close();
    await src.close();
    const back = await openImage(handle, { readOnly: true });
    const got = await back.read(0, back.size);
    expect(got.every((b, i) => b === raw[i])).toBe(true);
    await back.close();
  });

  it("in a dedicated worker the sync access handle is used, and the image reopens on the page", async () => {
    const worker = new Worker(new URL("./opfs-worker.ts", import.meta.url), { type: "module" });
    const result = await new Promise<{ ok: boolean; synchronous?: boolean; same?: boolean; error?: string }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => resolve({ ok: false, error: e.message });
      worker.postMessage({ name: "worker.qcow2", size: 8 << 20, offset: 1 << 20, length: 300_000 });
    });
    worker.terminate();
    expect(result).toEqual({ ok: true, synchronous: true, same: true });
    const img = await openImage(await fileHandle("worker.qcow2"), { readOnly: true });
    const back = await img.read(1 << 20, 300_000);
    expect(back.every((b, i) => b === ((i * 7 + 3) & 0xff))).toBe(true);
    await img.close();
  });
});
