// The Deno opener's refusals (issue 15): a backing file that is a FIFO, and a symbolic link
// beside the image that leads outside its directory under the 'same-dir' policy.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { HAVE_QEMU, qemuImg } from "../helpers/qemu.js";
import { ROOT, findDeno, requireDist } from "./tools.js";

const deno = findDeno();

const SCRIPT = (dist: string) => `
import { openImage } from ${JSON.stringify(dist)};
const out = {};
for (const [key, file, backing] of [["fifo", "img/top.qcow2", "any"], ["link", "img/top2.qcow2", "same-dir"], ["any", "img/top2.qcow2", "any"]]) {
  try {
    const img = await openImage(file, { backing, readOnly: true });
    out[key] = { ok: true, byte: (await img.read(0, 1))[0] };
    await img.close();
  } catch (e) {
    out[key] = { code: e.code, message: e.message };
  }
}
console.log(JSON.stringify(out));
`;

describe.skipIf(!deno || !HAVE_QEMU)("Deno opener safety", () => {
  it("refuses a FIFO backing file and a same-dir symbolic link that leads outside the directory", () => {
    requireDist("deno.js");
    const dir = mkdtempSync(join(tmpdir(), "vdisk-deno-opener-"));
    try {
      mkdirSync(join(dir, "img"));
      execFileSync("mkfifo", [join(dir, "img/pipe")]);
      qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "pipe", "-F", "raw", join(dir, "img/top.qcow2"), "1M");
      writeFileSync(join(dir, "secret.raw"), new Uint8Array(1 << 20).fill(0x41));
      symlinkSync(join(dir, "secret.raw"), join(dir, "img/base.raw"));
      qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", "base.raw", "-F", "raw", join(dir, "img/top2.qcow2"), "1M");
      writeFileSync(join(dir, "t.mjs"), SCRIPT(pathToFileURL(join(ROOT, "dist", "deno.js")).href));
      const out = execFileSync(
        deno!,
        ["run", "--cached-only", "--no-lock", "--no-prompt", "--node-modules-dir=manual", `--allow-read`, join(dir, "t.mjs")],
        {
          cwd: dir,
          encoding: "utf8",
          timeout: 30_000,
          env: { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        },
      );
      const r = JSON.parse(out) as Record<string, { ok?: boolean; byte?: number; code?: string; message?: string }>;
      expect(r.fifo).toMatchObject({ code: "ERR_OPEN_DENIED" });
      expect(r.fifo.message).toMatch(/regular files/);
      expect(r.link).toMatchObject({ code: "ERR_OPEN_DENIED" });
      expect(r.link.message).toMatch(/resolves to .*secret\.raw.*outside/);
      expect(r.any).toEqual({ ok: true, byte: 0x41 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
