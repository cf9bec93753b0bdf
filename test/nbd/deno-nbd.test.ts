// The NBD server and client in Deno (Deno.listen / Deno.connect adapters), reading an export the
// Node CLI serves and serving one of its own over TCP and a Unix socket.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/qemu.js";
import { startServe } from "../helpers/nbd.js";
import { ROOT, findDeno, requireDist } from "../runtime/tools.js";

const deno = findDeno();
if (!deno) console.warn("\n*** deno binary not found: SKIPPING the Deno NBD test ***\n");
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir("vdisk-nbd-deno-");
});
afterAll(() => tmp?.cleanup());

function sum(bytes: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < bytes.length; i++) h = (Math.imul(h, 31) + bytes[i]) >>> 0;
  return h;
}

describe.skipIf(!deno)("NBD in Deno", () => {
  it("openImage(nbd://…) reads a Node-served export; serveNbd serves over TCP and Unix sockets", async () => {
    requireDist("deno.js", "cli/main.js");
    const file = tmp.path("remote.raw");
    const data = Uint8Array.from({ length: 3 << 20 }, (_, i) => (i * 11 + (i >> 12)) & 0xff);
    writeFileSync(file, data);
    const server = await startServe(["-t", "-r", "-p", "0", "-f", "raw", file]);
    try {
      const out = await new Promise<string>((resolve, reject) => {
        execFile(
          deno!,
          [
            "run", "--cached-only", "--no-lock", "--no-prompt", "--node-modules-dir=manual",
            `--allow-net=127.0.0.1,unix:${tmp.dir}/deno.sock`, `--allow-read=${tmp.dir}`, `--allow-write=${tmp.dir}`,
            join(ROOT, "test", "nbd", "deno-nbd.mjs"), server.urls[0], tmp.dir,
          ],
          {
            cwd: ROOT, encoding: "utf8", timeout: 60_000,
            env: { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
          },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
        );
      });
      const report = JSON.parse(out) as Record<string, { url: string; readOk: boolean; written: number }> & {
        remoteSize: number;
        remoteSum: number;
      };
      expect(report.remoteSize).toBe(data.length);
      expect(report.remoteSum).toBe(sum(readFileSync(file)));
      expect(report.tcp.url).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/d$/);
      expect(report.tcp.readOk).toBe(true);
      expect(report.tcp.written).toBe(0xaa);
      expect(report.unix.url).toBe(`nbd+unix:///d?socket=${encodeURIComponent(`${tmp.dir}/deno.sock`)}`);
      expect(report.unix.readOk).toBe(true);
      expect(report.unix.written).toBe(0xbb);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
