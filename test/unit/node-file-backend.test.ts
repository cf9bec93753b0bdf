/**
 * The Node file backend in its modes: thread-pool and blocking I/O read and write the same
 * bytes and report failures as ImageErrors; `cache: "unsafe"` makes flush skip fdatasync.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NodeFileBackend } from "../../src/node.js";

const dir = mkdtempSync(join(tmpdir(), "vdisk-node-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("NodeFileBackend", () => {
  for (const blocking of [false, true]) {
    it(`${blocking ? "blocking" : "thread-pool"} I/O reads and writes at offsets, and fails with ERR_IO once closed`, async () => {
      const path = join(dir, `io-${blocking}.bin`);
      writeFileSync(path, new Uint8Array(10000).fill(7));
      const f = await NodeFileBackend.open(path, { blocking });
      await f.write(5000, new Uint8Array([1, 2, 3]));
      await f.write(12000, new Uint8Array([9])); // past the end: the file grows
      const into = new Uint8Array(6);
      expect(await f.read(4998, into)).toBe(6);
      expect(Array.from(into)).toEqual([7, 7, 1, 2, 3, 7]);
      expect(await f.read(11999, new Uint8Array(10))).toBe(2); // short read at EOF
      expect(await f.size()).toBe(12001);
      await f.flush();
      await f.close();
      const onDisk = readFileSync(path);
      expect(Array.from(onDisk.subarray(5000, 5003))).toEqual([1, 2, 3]);
      expect(onDisk[12000]).toBe(9);
      await expect(f.read(0, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_IO" });
      await expect(f.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_IO" });
    });
  }

  it("flush asks the kernel (fdatasync) by default and not with cache 'unsafe'", async () => {
    const path = join(dir, "flush.bin");
    writeFileSync(path, new Uint8Array(16));
    // After close the descriptor is gone: an fdatasync fails (EBADF), a skipped one cannot.
    const safe = await NodeFileBackend.open(path);
    await safe.close();
    await expect(safe.flush()).rejects.toMatchObject({ code: "ERR_IO" });
    const unsafe = await NodeFileBackend.open(path, { cache: "unsafe" });
    await unsafe.close();
    await expect(unsafe.flush()).resolves.toBeUndefined();
  });
});
