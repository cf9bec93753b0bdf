/**
 * `vdisk bench` against `qemu-img bench`: the same report lines (timings aside), errors and exit
 * codes, and a write run that leaves the same data where qemu-img's does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk bench comparisons with qemu-img");

/** Report text without the run time. */
const untimed = (text: string) => neutral(text).replace(/completed in [0-9.]+ seconds/, "completed in T seconds");

describe.skipIf(!HAVE_QEMU)("vdisk bench matches qemu-img bench", () => {
  const t = tempDir("vdisk-cli-bench-");
  beforeAll(() => qemuImg("create", "-q", "-f", "qcow2", t.path("b.qcow2"), "64M"));
  afterAll(() => t.cleanup());

  // (`-d 0` is left out: qemu-img 7.2's bench never returns with it; vdisk refuses it.)
  const cases = [
    "-c 100 -d 4 -s 4k",
    "-w -c 50 -d 2 -s 64k -S 128k -o 1M --pattern=0x5a -f qcow2",
    "-w -c 10 --flush-interval=3",
    "-w -c 10 -d 2 --flush-interval=3",
    "-w -c 10 -d 2 --flush-interval=3 --no-drain",
    "-c 10 -n -t none -q",
    "-c 0",
    "--flush-interval=3",
    "-c 10 -s 128M",
    "-c x",
  ];
  for (const c of cases) {
    it(`bench ${c}`, async () => {
      const args = c.split(" ");
      const q = qemu("qemu-img", ["bench", ...args, "b.qcow2"], t.dir);
      const v = await inDir(t.dir, () => vdisk("bench", ...args, "b.qcow2"));
      expect(v.status).toBe(q.status);
      expect(untimed(v.stdout)).toBe(untimed(q.stdout));
      // The failed-request line names the error in vdisk's words; the prefix is qemu-img's.
      expect(neutral(v.stderr).replace(/^(PROG: Failed request): .*$/m, "$1")).toBe(neutral(q.stderr).replace(/^(PROG: Failed request): .*$/m, "$1"));
    });
  }

  it("a write run wraps at the end of the disk and writes the pattern where qemu-img does", async () => {
    qemuImg("create", "-q", "-f", "qcow2", t.path("q.qcow2"), "64M");
    qemuImg("create", "-q", "-f", "qcow2", t.path("v.qcow2"), "64M");
    const args = ["-w", "-c", "5", "-d", "1", "-s", "4k", "-S", "60M", "--pattern=0x5a"];
    qemu("qemu-img", ["bench", ...args, "q.qcow2"], t.dir);
    await inDir(t.dir, () => vdisk("bench", ...args, "v.qcow2"));
    expect(qemuImg("compare", t.path("q.qcow2"), t.path("v.qcow2"))).toMatch(/identical/);
    const data = JSON.parse(qemuImg("map", "--output=json", t.path("v.qcow2"))).filter((e: { data: boolean }) => e.data);
    expect(data.length).toBe(5);
  });
});
