/**
 * One backing-chain limit for open, convert and `info --backing-chain`, at least what qemu-img
 * follows (it converted a 40-deep chain where vdisk stopped at 16, and info stopped at 64), with
 * an error naming the image the user gave. And qcow2 backing names outside the header cluster
 * are refused as qemu refuses them.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isImageError, MAX_BACKING_CHAIN_DEPTH, openImage } from "../../src/node.js";
import { HAVE_QEMU, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("backing chain limit tests");

describe.skipIf(!HAVE_QEMU)("backing chain limit", () => {
  it("a 70-deep qcow2 chain converts like qemu-img and info --backing-chain lists every layer", async () => {
    expect(MAX_BACKING_CHAIN_DEPTH).toBeGreaterThanOrEqual(1024);
    const t = tempDir();
    qemuImg("create", "-q", "-f", "qcow2", t.path("c0.qcow2"), "1M");
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 64k", t.path("c0.qcow2")]);
    const depth = 70;
    for (let i = 1; i <= depth; i++) {
      qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", `c${i - 1}.qcow2`, "-F", "qcow2", t.path(`c${i}.qcow2`), "1M");
    }
    qemu("qemu-io", ["-f", "qcow2", "-c", `write -P 0x22 512k 4k`, t.path(`c${depth}.qcow2`)]);
    const top = t.path(`c${depth}.qcow2`);
    qemuImg("convert", "-O", "raw", top, t.path("want.raw"));
    const r = await vdisk("convert", "-O", "raw", top, t.path("got.raw"));
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(t.path("got.raw")).equals(readFileSync(t.path("want.raw")))).toBe(true);
    const info = await vdisk("info", "--backing-chain", "--output=json", top);
    expect(info.status, info.stderr).toBe(0);
    expect((JSON.parse(info.stdout) as unknown[]).length).toBe(depth + 1);
    // A lower limit names the image the caller opened, not the layer where it stopped.
    const e = await openImage(top, { backing: "any", readOnly: true, maxChainDepth: 10 }).catch((x: unknown) => x);
    expect(isImageError(e) && (e as { code: string }).code).toBe("ERR_LIMIT_EXCEEDED");
    expect((e as Error).message).toContain(`Backing chain of ${top} is deeper than the limit of 10`);
    t.cleanup();
  }, 60_000);

  it("a qcow2 backing name stored outside the header cluster is refused with qemu's words", async () => {
    const t = tempDir();
    qemuImg("create", "-q", "-f", "raw", t.path("base.raw"), "1M");
    qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "base.raw", "-F", "raw", t.path("top.qcow2"), "1M");
    const b = Buffer.alloc(200_000);
    readFileSync(t.path("top.qcow2")).copy(b);
    const dv = new DataView(b.buffer, b.byteOffset);
    const off = Number(dv.getBigUint64(8));
    const len = dv.getUint32(16);
    b.copy(b, 65536 + 512, off, off + len);
    const cases: Array<[number, RegExp]> = [
      [65536 + 512, /Invalid backing file offset/],
      [65536 - 4, /Backing file name too long/],
    ];
    for (const [at, phrase] of cases) {
      dv.setBigUint64(8, BigInt(at));
      writeFileSync(t.path("bad.qcow2"), b);
      const q = qemu("qemu-img", ["info", t.path("bad.qcow2")]);
      expect(q.stderr).toMatch(phrase);
      const r = await vdisk("info", t.path("bad.qcow2"));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(phrase);
    }
    t.cleanup();
  });
});
