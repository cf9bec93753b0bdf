/**
 * A read-only open never writes a byte, whatever state the image is in: every writable format,
 * closed cleanly and "crashed" (the bytes of an open session, with its first-write marks set:
 * dirty bits, need-check, in-use flags, new GUIDs or CIDs, unflushed journals), opened
 * read-only on a backend that would accept writes, then read, mapped, checked and described.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, builtinDrivers, createImage, openImage } from "../../src/index.js";

/** A writable in-memory file that counts every call that could change it. */
class WatchedBackend extends MemoryBackend {
  changes: string[] = [];
  override async write(offset: number, data: Uint8Array): Promise<void> {
    this.changes.push(`write ${offset}+${data.length}`);
    return super.write(offset, data);
  }
  override async truncate(size: number): Promise<void> {
    this.changes.push(`truncate ${size}`);
    return super.truncate(size);
  }
}

const MiB = 1 << 20;
const SIZE = 8 * MiB;

/** Every driver of the registry that creates images, and options that add a first-write mark. */
const FORMATS: Array<[string, string?]> = [
  ...builtinDrivers.filter((d) => typeof d.create === "function").map((d): [string] => [d.name]),
  ["qcow2", "lazy_refcounts=on,cluster_size=4k"],
];

function pattern(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** Writes a little of everything; returns the file's bytes mid-session and after close. */
async function makeImage(format: string, options: string | undefined): Promise<{ crashed: Uint8Array; closed: Uint8Array }> {
  const mem = new MemoryBackend(new Uint8Array(0), { name: `t.${format}` });
  const img = await createImage(mem, { format, size: SIZE, ...(options ? { options } : {}) });
  await img.write(0, pattern(3 * 65536 + 1000, 1));
  await img.flush();
  await img.write(2 * MiB + 512, pattern(70000, 2));
  await img.writeZeroes(4 * MiB, MiB);
  await img.write(5 * MiB + 4096, pattern(4096, 3));
  await img.flush();
  await img.write(10, pattern(100, 4)); // an overwrite in place, after a flush
  await img.write(7 * MiB, pattern(9000, 5)); // unflushed when "crashed"
  const crashed = mem.bytes().slice();
  await img.close();
  return { crashed, closed: mem.bytes().slice() };
}

async function exerciseReadOnly(format: string, bytes: Uint8Array): Promise<WatchedBackend> {
  const file = new WatchedBackend(bytes.slice(), { name: `t.${format}` });
  const img = await openImage(file, { format, readOnly: true, warn: () => {} });
  await img.read(0, img.size);
  for await (const e of img.extents()) void e;
  await img.check().catch((e: unknown) => {
    // Formats without a checker say so; anything else is a failure.
    if ((e as { code?: string }).code !== "ERR_UNSUPPORTED_FEATURE") throw e;
  });
  await img.info();
  await expect(img.write(0, new Uint8Array(512))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
  await img.flush();
  await img.close();
  return file;
}

/** Marks the mid-session bytes must carry (so the crashed case is what it claims to be). */
const MARKS: Record<string, (b: Uint8Array) => boolean> = {
  "qcow2 (lazy_refcounts=on,cluster_size=4k)": (b) => (b[79] & 1) === 1, // incompatible: dirty
  qed: (b) => (b[16] & 2) === 2, // features: need-check
  parallels: (b) => new DataView(b.buffer, b.byteOffset).getUint32(44, true) === 0x746f6e59, // inuse
};

describe("read-only opens write nothing", () => {
  for (const [format, options] of FORMATS) {
    const label = options ? `${format} (${options})` : format;
    it(`${label}: closed cleanly, and mid-session (first-write marks set)`, async () => {
      const { crashed, closed } = await makeImage(format, options);
      if (MARKS[label]) {
        expect(MARKS[label](crashed), `${label}: mark set mid-session`).toBe(true);
        expect(MARKS[label](closed), `${label}: mark cleared at close`).toBe(false);
      }
      for (const [state, bytes] of [["closed", closed], ["crashed", crashed]] as const) {
        const file = await exerciseReadOnly(format, bytes);
        expect(file.changes, `${label} ${state}`).toEqual([]);
        const after = file.bytes();
        expect(after.length, `${label} ${state}: length`).toBe(bytes.length);
        expect(Buffer.compare(Buffer.from(after), Buffer.from(bytes)), `${label} ${state}: bytes`).toBe(0);
      }
    });
  }
});
