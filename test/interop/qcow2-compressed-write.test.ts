import { writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createImage, openImage } from "../../src/node.js";
import { HAVE_QEMU, qemuCheck, qemuImgStatus, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("qcow2 compressed-write interop tests");

/** Compressible but not trivial: text-like runs that differ per cluster. */
function compressible(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = 0x41 + ((Math.floor(i / 37) * 7 + seed) % 26);
  return out;
}

describe.skipIf(!HAVE_QEMU)("compressed qcow2 clusters written by vdisk", () => {
  const t = tempDir("vdisk-qcow2-compress-");
  afterAll(() => t.cleanup());

  for (const type of ["zlib", "zstd"]) {
    it(`writeCompressed() stores ${type} clusters that qemu-img counts, checks and reads`, async () => {
      const size = 1 << 20;
      const f = t.path(`c-${type}.qcow2`);
      const img = await createImage(f, { format: "qcow2", size, options: `compression_type=${type}` });
      const model = new Uint8Array(size);
      for (let c = 0; c < 8; c++) {
        const d = compressible(65536, c);
        await img.writeCompressed(c * 2 * 65536, d);
        model.set(d, c * 2 * 65536);
      }
      await img.close();
      writeFileSync(f + ".raw", model);
      const q = qemuCheck(f);
      expect(q.status).toBe(0);
      expect(q.json["compressed-clusters"]).toBe(8);
      const cmp = qemuImgStatus("compare", "-f", "qcow2", "-F", "raw", f, f + ".raw");
      expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
      const again = await openImage(f, { readOnly: true });
      const info = await again.info();
      expect(info.formatSpecific?.data["compression-type"]).toBe(type);
      expect(Buffer.compare(await again.read(0, size), model)).toBe(0);
      await again.close();
    });
  }
});
