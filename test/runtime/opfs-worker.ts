// A dedicated worker for opfs.browser.test.ts: creates a qcow2 in OPFS through the fast path
// (a sync access handle), writes a pattern, closes it and reports what it wrote.
import { OpfsBackend, createImage, openImage } from "vdisk";

self.onmessage = async (event: MessageEvent<{ name: string; size: number; offset: number; length: number }>) => {
  const { name, size, offset, length } = event.data;
  try {
    const root = await navigator.storage.getDirectory();
    const handle = await root.getFileHandle(name, { create: true });
    const io = await OpfsBackend.open(handle, { truncate: true });
    const img = await createImage(io, { format: "qcow2", size });
    const data = new Uint8Array(length);
    for (let i = 0; i < length; i++) data[i] = (i * 7 + 3) & 0xff;
    await img.write(offset, data);
    await img.close();
    // Reopened through the handle (openImage picks the sync path again in a worker).
    const again = await openImage(handle);
    const back = await again.read(offset, length);
    await again.close();
    self.postMessage({ ok: true, synchronous: io.synchronous, same: back.every((b, i) => b === data[i]) });
  } catch (e) {
    self.postMessage({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
};
