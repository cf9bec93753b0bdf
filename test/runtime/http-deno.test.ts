// HttpBackend in Deno: `openImage(url)` from the package's deno entry reads a qcow2 served by a
// local node:http server, with only --allow-net for that address; the bytes are the fixture's.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpServer, type TestHttpServer } from "../helpers/http-server.js";
import { ROOT, findDeno, requireDist } from "./tools.js";

const deno = findDeno();
const FIXTURES = join(ROOT, "test", "fixtures");

function runDeno(args: string[], input: string): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(deno!, args, {
      cwd: ROOT,
      env: { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status: status ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

describe.skipIf(!deno)("HttpBackend in Deno", () => {
  let server: TestHttpServer;
  beforeAll(async () => {
    requireDist("deno.js");
    server = await startHttpServer(readFileSync(join(FIXTURES, "pattern.qcow2")));
  });
  afterAll(() => server?.close());

  it("openImage('http://…') reads the image over Range requests with only --allow-net", async () => {
    const host = new URL(server.url).host;
    const script = `import { openImage } from "vdisk";
      const img = await openImage(${JSON.stringify(server.url)});
      const bytes = await img.read(0, img.size);
      const sha = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
      console.log(JSON.stringify({ format: img.format, size: img.size, write: img.capabilities.write, sha }));
      await img.close();`;
    const r = await runDeno(
      ["run", "--cached-only", "--no-lock", "--no-prompt", "--node-modules-dir=manual", `--allow-net=${host}`, "-"],
      script,
    );
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { format: string; size: number; write: boolean; sha: string };
    const raw = readFileSync(join(FIXTURES, "pattern.raw"));
    expect(out).toEqual({
      format: "qcow2",
      size: raw.length,
      write: false,
      sha: createHash("sha256").update(raw).digest("hex"),
    });
    expect(server.requests.every((q) => q.range !== undefined)).toBe(true);
  });
});
if (!deno) console.warn("\n*** deno binary not found: SKIPPING the Deno HTTP test ***\n");
