/**
 * Files an image names (backing files, extents) open only when they are regular files: a FIFO
 * blocks open(2) forever (and a stuck thread-pool thread keeps the process from exiting). And
 * the `same-dir` policy judges where a symbolic link leads, not the name beside the image.
 */
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdirSync, openSync, symlinkSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { HAVE_QEMU, qemuImg, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("opener safety tests");

/**
 * Makes a FIFO at `path`; if an open of it blocks, a writer opened after `ms` releases it (so a
 * regression fails the assertions instead of hanging the test process).
 */
function fifo(path: string, ms = 1500): () => void {
  execFileSync("mkfifo", [path]);
  let fd: number | undefined;
  const t = setTimeout(() => (fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)), ms);
  return () => {
    clearTimeout(t);
    if (fd !== undefined) closeSync(fd);
  };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe.skipIf(!HAVE_QEMU)("node opener safety", () => {
  it("a backing file that is a FIFO is refused at once with ERR_OPEN_DENIED", async () => {
    const t = tempDir();
    cleanups.push(t.cleanup, fifo(t.path("pipe")));
    qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "pipe", "-F", "raw", t.path("top.qcow2"), "1M");
    const started = Date.now();
    const e = await openImage(t.path("top.qcow2"), { backing: "any", readOnly: true }).catch((x: unknown) => x);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(e).toMatchObject({ code: "ERR_OPEN_DENIED" });
    expect((e as Error).message).toMatch(/is a FIFO.*regular files/);
  });

  it("a VMDK extent that is a FIFO is refused at once", async () => {
    const t = tempDir();
    cleanups.push(t.cleanup, fifo(t.path("extent")));
    writeFileSync(
      t.path("d.vmdk"),
      '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n' +
        'RW 2048 FLAT "extent" 0\n\nddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "2"\n' +
        'ddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\nddb.adapterType = "ide"\n',
    );
    const e = await openImage(t.path("d.vmdk"), { backing: "any", readOnly: true }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: "ERR_OPEN_DENIED" });
    expect((e as Error).message).toMatch(/FIFO/);
  });

  it("same-dir refuses a symbolic link beside the image that leads outside its directory", async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    mkdirSync(t.path("img"));
    writeFileSync(t.path("secret.raw"), new Uint8Array(1 << 20).fill(0x41));
    symlinkSync(t.path("secret.raw"), t.path("img/base.raw"));
    qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "base.raw", "-F", "raw", t.path("img/top.qcow2"), "1M");
    const e = await openImage(t.path("img/top.qcow2"), { backing: "same-dir", readOnly: true }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: "ERR_OPEN_DENIED" });
    expect((e as Error).message).toMatch(/resolves to .*secret\.raw.*outside/);
    // Under 'any' the same chain opens (the check is the policy's, not the opener's).
    const ok = await openImage(t.path("img/top.qcow2"), { backing: "any", readOnly: true });
    expect((await ok.read(0, 4))[0]).toBe(0x41);
    await ok.close();
  });

  it("same-dir still follows a symbolic link that stays inside the image's directory", async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    mkdirSync(t.path("img/sub"), { recursive: true });
    writeFileSync(t.path("img/sub/real.raw"), new Uint8Array(1 << 20).fill(0x42));
    symlinkSync("sub/real.raw", t.path("img/base.raw"));
    qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "base.raw", "-F", "raw", t.path("img/top.qcow2"), "1M");
    const img = await openImage(t.path("img/top.qcow2"), { backing: "same-dir", readOnly: true });
    expect((await img.read(0, 4))[0]).toBe(0x42);
    await img.close();
  });
});
