/**
 * `vdisk convert … SRC -` through real pipes: the built CLI (`node dist/cli/main.js`) run by a
 * shell, its output piped into `cat > FILE` or `sha256sum`, then judged by qemu-img. Also the
 * refusals (formats that cannot stream, pipes as images) against qemu-img's own messages.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";
import { ROOT, requireDist } from "../runtime/tools.js";

if (!HAVE_QEMU) warnSkipped("streamed convert CLI tests");
const tmp = tempDir("vdisk-stream-cli-");
afterAll(() => tmp.cleanup());

/** Runs `script` in bash (pipefail) inside the temp dir, with `vdisk` the built CLI. */
function sh(script: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-o", "pipefail", "-c", `vdisk() { "$NODE" "$MAIN" "$@"; }; ${script}`], {
    cwd: tmp.dir,
    encoding: "utf8",
    env: { ...process.env, NODE: process.execPath, MAIN: join(ROOT, "dist", "cli", "main.js") },
    maxBuffer: 64 << 20,
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  requireDist("cli/main.js");
  if (!HAVE_QEMU) return;
  qemuImg("create", "-f", "raw", tmp.path("big.raw"), "40M");
  qemuIo("raw", tmp.path("big.raw"), ["write -P 0x5a 0 5M", "write -P 0xa5 7340033 1M", "write -P 0x3c 39M 1M"]);
});

const PIPED: Array<[string, string, string]> = [
  ["qcow2", "-O qcow2", "qcow2"],
  ["qcow2 -c", "-O qcow2 -c", "qcow2"],
  ["streamOptimized vmdk", "-O vmdk -o subformat=streamOptimized", "vmdk"],
  ["dynamic vhd", "-O vpc", "vpc"],
  ["raw", "-O raw", "raw"],
];

describe.skipIf(!HAVE_QEMU)("vdisk convert into a pipe", () => {
  for (const [label, flags, fmt] of PIPED) {
    it(`convert ${flags} big.raw - | cat > out: ${label} passes qemu-img check and compare`, () => {
      const out = `out-${label.replace(/\W+/g, "_")}.${fmt}`;
      const r = sh(`vdisk convert ${flags} big.raw - | cat > ${out}`);
      expect(r.status, r.stderr).toBe(0);
      if (fmt === "qcow2" || fmt === "vmdk") {
        const c = qemuCheck(tmp.path(out), fmt);
        expect(c.status, JSON.stringify(c.json)).toBe(0);
      }
      const cmp = qemuImgStatus("compare", "-f", "raw", "-F", fmt, tmp.path("big.raw"), tmp.path(out));
      expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
    });
  }

  it("convert -O raw big.raw - | sha256sum gives the source's hash; qcow2 piped hashes as the same stream saved", () => {
    const want = createHash("sha256").update(readFileSync(tmp.path("big.raw"))).digest("hex");
    const r = sh(`vdisk convert -O raw big.raw - | sha256sum`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split(/\s/)[0]).toBe(want);
    // The qcow2 stream is deterministic (no timestamps, no random ids): hashing it in the pipe
    // must give what the saved copy hashes to.
    const q = sh(`vdisk convert -O qcow2 big.raw /dev/stdout | sha256sum; vdisk convert -O qcow2 big.raw - | cat > h.qcow2`);
    expect(q.status, q.stderr).toBe(0);
    expect(q.stdout.split(/\s/)[0]).toBe(createHash("sha256").update(readFileSync(tmp.path("h.qcow2"))).digest("hex"));
  });

  it("writes into a FIFO named as DST, with -p progress on stdout as usual", () => {
    const r = sh(`rm -f fifo; mkfifo fifo; timeout 60 cat fifo > fifo.qcow2 & vdisk convert -p -O qcow2 big.raw fifo; wait`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("(100.00/100%)");
    expect(qemuCheck(tmp.path("fifo.qcow2")).status).toBe(0);
    expect(qemuImgStatus("compare", "-f", "raw", tmp.path("big.raw"), tmp.path("fifo.qcow2")).status).toBe(0);
  });

  it("with DST '-', -p progress goes to stderr and the image stays clean", () => {
    const r = sh(`vdisk convert -p -O qcow2 big.raw - > p.qcow2`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("(100.00/100%)");
    expect(qemuCheck(tmp.path("p.qcow2")).status).toBe(0);
  });

  it("several sources stream one after another, as the seekable convert copies them", () => {
    const r = sh(
      `qemu-img create -q -f raw a.raw 3M && qemu-io -f raw -c "write -P 0x17 1M 1M" a.raw >/dev/null && ` +
        `vdisk convert -O qcow2 a.raw big.raw - | cat > ab.qcow2 && cat a.raw big.raw > ab.raw`,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(qemuCheck(tmp.path("ab.qcow2")).status).toBe(0);
    expect(qemuImgStatus("compare", "-f", "raw", "-F", "qcow2", tmp.path("ab.raw"), tmp.path("ab.qcow2")).status).toBe(0);
  });

  it("fails when the reader closes the pipe before the image is complete", () => {
    const r = sh(`vdisk convert -O raw big.raw - | head -c 1000 > /dev/null`);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("vdisk: -: the reader closed the pipe before the image was complete\n");
  });

  it("refuses formats that cannot stream at once, naming those that can", () => {
    for (const fmt of ["qed", "vdi", "vhdx", "parallels"]) {
      const r = sh(`vdisk convert -O ${fmt} big.raw - | cat > /dev/null`);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^vdisk: Cannot write ${fmt} to a non-seekable output: .*formats that can: qcow2, vpc, vmdk, raw\\)\\n$`));
    }
    const v = sh(`vdisk convert -O vmdk big.raw - | cat > /dev/null`);
    expect(v.status).toBe(1);
    expect(v.stderr).toContain("subformat=streamOptimized");
  });

  it("info on a pipe fails as qemu-img does instead of reporting an empty raw disk", () => {
    const v = sh(`echo hello | vdisk info /dev/stdin`);
    const q = sh(`echo hello | qemu-img info /dev/stdin`);
    expect(v.status).toBe(1);
    expect(q.status).toBe(1);
    expect(v.stderr.replace(/^vdisk: /, "")).toBe(q.stderr.replace(/^qemu-img: /, ""));
  });

  it("a pipe as the source of convert is a one-line error", () => {
    const r = sh(`cat big.raw | vdisk convert -O qcow2 /dev/stdin x.qcow2`);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^vdisk: Could not open '\/dev\/stdin': .*regular file\n$/);
    const d = sh(`cat big.raw | vdisk convert -O raw - x.raw`);
    expect(d.status).toBe(1);
    expect(d.stderr.split("\n").length).toBe(2);
  });
});

