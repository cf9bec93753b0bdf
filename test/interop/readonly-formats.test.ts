/**
 * The formats qemu-img only reads — bochs, cloop and dmg — on QEMU's sample images
 * (../shared/corpus/qemu-samples): probed like qemu, read with the hashes MANIFEST.json records,
 * the header and table pokes of qemu-iotests 075 and 078 refused with qemu's messages
 * (corpus/iotests.md), and create/convert/amend refused with qemu-img's wording.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MemoryBackend, openImage } from "../../src/index.js";
import { vdisk } from "../cli/cli-helpers.js";
import { tempDir } from "../helpers/qemu.js";

const SAMPLES = join(import.meta.dirname, "..", "..", "..", "shared", "corpus", "qemu-samples");
const HAVE_BZIP2 = spawnSync("sh", ["-c", "command -v bzip2"]).status === 0;
const available = HAVE_BZIP2 && existsSync(join(SAMPLES, "MANIFEST.json"));
if (!available) console.warn("\n*** SKIPPED: bochs/cloop sample tests — bzip2 or ../shared/corpus/qemu-samples missing ***\n");

interface Sample {
  file: string;
  format: string;
  virtual_size: number;
  raw_sha256: string;
}

function unpack(file: string): Uint8Array {
  const r = spawnSync("bzip2", ["-dc", join(SAMPLES, file)], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bzip2 -dc ${file} failed`);
  return new Uint8Array(r.stdout);
}

/** The sample with `bytes` poked at `offset`. */
function poked(image: Uint8Array, pokes: Array<[number, number[]]>): Uint8Array {
  const copy = image.slice();
  for (const [at, bytes] of pokes) copy.set(bytes, at);
  return copy;
}

async function openError(bytes: Uint8Array, format?: string): Promise<unknown> {
  return openImage(new MemoryBackend(bytes), { format, readOnly: true }).then(
    async (d) => {
      await d.read(0, 512);
      await d.close();
      return undefined;
    },
    (e: unknown) => e,
  );
}

describe.skipIf(!available)("bochs and cloop samples", () => {
  const manifest: Sample[] = available ? JSON.parse(readFileSync(join(SAMPLES, "MANIFEST.json"), "utf8")) : [];
  const sample = (format: string) => manifest.find((s) => s.format === format)!;

  for (const format of ["bochs", "cloop", "dmg"]) {
    it(`${format}: probed, and reads with the manifest's hash and size`, async () => {
      const s = sample(format);
      const img = await openImage(new MemoryBackend(unpack(s.file), { name: s.file.replace(/\.bz2$/, "") }), { readOnly: true });
      expect(img.format).toBe(format);
      expect(img.size).toBe(s.virtual_size);
      expect(img.capabilities.write).toBe(false);
      const all = await img.read(0, img.size);
      expect(createHash("sha256").update(all).digest("hex")).toBe(s.raw_sha256);
      // Odd reads across blocks give the same bytes.
      const part = await img.read(img.size - 70000, 70000);
      expect(Buffer.from(part).equals(Buffer.from(all.subarray(img.size - 70000)))).toBe(true);
      await img.close();
    });
  }

  it("cloop: qemu-iotests 075's pokes give qemu's errors", async () => {
    const image = unpack(sample("cloop").file);
    const cases: Array<[Array<[number, number[]]>, string]> = [
      [[[128, [0x00, 0x00, 0x02, 0x01]]], "block_size 513 must be a multiple of 512"],
      [[[128, [0, 0, 0, 0]]], "block_size cannot be zero"],
      [[[128, [0xff, 0xff, 0xfe, 0x00]]], "block_size 4294966784 must be 64 MB or less"],
      [[[132, [0xff, 0xff, 0xff, 0xff]]], "n_blocks 4294967295 must be 536870911 or less"],
      [[[132, [0x04, 0x00, 0x00, 0x01]]], "image requires too many offsets, try increasing block size"],
      [[[136, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]], [144, [0, 0, 0, 0, 0xff, 0xfe, 0, 0]]], "offsets not monotonically increasing at index 1, image file is corrupt"],
      [[[136, [0, 0, 0, 0, 0, 0, 0, 0]], [144, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]], "invalid compressed block size at index 1, image file is corrupt"],
    ];
    for (const [pokes, message] of cases) {
      const e = await openError(poked(image, pokes), "cloop");
      expect(e, message).toMatchObject({ code: "ERR_CORRUPT_IMAGE", message });
    }
  });

  it("bochs: qemu-iotests 078's pokes give qemu's errors", async () => {
    const image = unpack(sample("bochs").file);
    const cases: Array<[Array<[number, number[]]>, string]> = [
      [[[0x48, [0xff, 0xff, 0xff, 0xff]]], "Catalog size is too large"],
      [[[0x48, [0x00, 0x00, 0x00, 0x40]]], "Catalog size is too large"],
      [[[0x58, [0x00, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x7f]]], "Catalog size is too small for this disk size"],
      [[[0x48, [0x10, 0x00, 0x00, 0x00]]], "Catalog size is too small for this disk size"],
      [[[0x50, [0x00, 0x00, 0x00, 0x80]]], "Extent size 2147483648 is too large"],
      [[[0x50, [0x00, 0x00, 0x00, 0x00]]], "Extent size must be at least 512"],
    ];
    for (const [pokes, message] of cases) {
      const e = await openError(poked(image, pokes), "bochs");
      expect(e, message).toMatchObject({ code: "ERR_CORRUPT_IMAGE", message });
    }
  });

  it("dmg: a damaged trailer or property list is an ImageError naming it", async () => {
    const image = unpack(sample("dmg").file);
    const koly = image.length - 512;
    // No koly magic.
    expect(await openError(poked(image, [[koly, [0, 0, 0, 0]]]), "dmg")).toMatchObject({ code: "ERR_CORRUPT_IMAGE", message: /no koly trailer/ });
    // A property list offset past the file.
    expect(await openError(poked(image, [[koly + 0xd8, [0x7f, 0, 0, 0, 0, 0, 0, 0]]]), "dmg")).toMatchObject({ code: "ERR_CORRUPT_IMAGE", message: /property list/ });
    // The data fork length cut to 512 bytes: chunks point past it.
    expect(await openError(poked(image, [[koly + 32, [0, 0, 0, 0, 0, 0, 2, 0]]]), "dmg")).toMatchObject({ code: "ERR_CORRUPT_IMAGE", message: /past the data fork/ });
  });

  it("create, convert -O and amend are refused with qemu-img's wording", async () => {
    const t = tempDir("vdisk-readonly-");
    try {
      for (const format of ["bochs", "cloop", "dmg"]) {
        const c = await vdisk("create", "-f", format, t.path(`x.${format}`), "1M");
        expect(c.status).toBe(1);
        expect(c.stderr).toContain(`Format driver '${format}' does not support image creation`);
      }
    } finally {
      t.cleanup();
    }
  });
});
