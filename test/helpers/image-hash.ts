/**
 * Hashing a disk's guest bytes without materialising them: data extents are read in chunks,
 * zero extents feed one reusable zero buffer (so a sparse 64 GiB disk costs hashing time only).
 */
import { createHash } from "node:crypto";
import type { BlockDevice } from "../../src/index.js";

const CHUNK = 4 << 20;
const ZEROS = new Uint8Array(CHUNK);

/** sha256 (hex) of the guest contents of `img`, streamed through its extents. */
export async function sha256OfDevice(img: BlockDevice): Promise<string> {
  const h = createHash("sha256");
  for await (const e of img.extents()) {
    for (let pos = 0; pos < e.length; pos += CHUNK) {
      const n = Math.min(CHUNK, e.length - pos);
      h.update(e.zero ? ZEROS.subarray(0, n) : await img.read(e.offset + pos, n));
    }
  }
  return h.digest("hex");
}

/** The extents of `img` merged on `zero`/`data` alone (the comparable part of `qemu-img map`). */
export async function zeroDataMap(img: BlockDevice): Promise<Array<{ start: number; length: number; zero: boolean; data: boolean }>> {
  const out: Array<{ start: number; length: number; zero: boolean; data: boolean }> = [];
  for await (const e of img.extents()) {
    const last = out[out.length - 1];
    if (last && last.zero === e.zero && last.data === e.data) last.length += e.length;
    else out.push({ start: e.offset, length: e.length, zero: e.zero, data: e.data });
  }
  return out;
}
