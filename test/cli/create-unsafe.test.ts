/**
 * `vdisk create -u`: the backing file is recorded without being opened (it may not exist yet),
 * as qemu-img does; without a size that is qemu-img's error.
 */
import { afterAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk create -u comparisons with qemu-img");

describe.skipIf(!HAVE_QEMU)("vdisk create -u", () => {
  const t = tempDir("vdisk-cli-create-u-");
  afterAll(() => t.cleanup());

  it("records a missing backing file as qemu-img does", async () => {
    const v = await inDir(t.dir, () => vdisk("create", "-q", "-f", "qcow2", "-u", "-b", "later.qcow2", "-F", "qcow2", "v.qcow2", "1M"));
    expect(v.stderr).toBe("");
    expect(v.status).toBe(0);
    qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "later.qcow2", "-F", "qcow2", "q.qcow2", "1M"], t.dir);
    const vi = JSON.parse(qemuImg("info", "--output=json", "-U", t.path("v.qcow2")));
    const qi = JSON.parse(qemuImg("info", "--output=json", "-U", t.path("q.qcow2")));
    for (const k of ["virtual-size", "backing-filename", "backing-filename-format"]) expect(vi[k], k).toEqual(qi[k]);
  });

  it("without a size: qemu-img's message and exit code", async () => {
    const q = qemu("qemu-img", ["create", "-f", "qcow2", "-u", "-b", "later.qcow2", "-F", "qcow2", "q2.qcow2"], t.dir);
    const v = await inDir(t.dir, () => vdisk("create", "-f", "qcow2", "-u", "-b", "later.qcow2", "-F", "qcow2", "q2.qcow2"));
    expect(v.status).toBe(q.status);
    expect(neutral(v.stderr)).toBe(neutral(q.stderr));
  });
});
