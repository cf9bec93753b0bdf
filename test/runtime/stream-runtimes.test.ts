// The streaming scenario in Node and Deno through `import "vdisk"`, the images each runtime
// streamed judged by qemu-img. Chromium runs it in stream.browser.test.ts.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectStreamReport, type StreamReport } from "./stream-expect.js";
import { ROOT, findDeno, findQemuImg, requireDist, DENO_ENV, denoRunArgs } from "./tools.js";

const FIXTURES = join(ROOT, "test", "fixtures");
const RUNNER = join(ROOT, "test", "runtime", "run-stream-scenario.mjs");
const deno = findDeno();
const qemuImg = findQemuImg();
let scratch = "";

beforeAll(() => {
  requireDist("node.js", "deno.js");
  scratch = mkdtempSync(join(tmpdir(), "vdisk-stream-runtime-"));
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** qemu-img's verdict on the streamed files: clean, and the fixture's disk. */
function expectQemuAccepts(dir: string, report: StreamReport): void {
  const qcow2 = join(dir, "streamed.qcow2");
  expect(createHash("sha256").update(readFileSync(qcow2)).digest("hex")).toBe(report.qcow2.sha256);
  if (!qemuImg) {
    console.warn("\n*** qemu-img not found: SKIPPING the qemu-img check of the streamed images ***\n");
    return;
  }
  const raw = join(FIXTURES, "pattern.raw");
  for (const [file, fmt] of [[qcow2, "qcow2"], [join(dir, "blob.vmdk"), "vmdk"]] as const) {
    execFileSync(qemuImg, ["check", "-q", "-f", fmt, file]);
    execFileSync(qemuImg, ["compare", "-q", "-f", fmt, "-F", "raw", file, raw]);
  }
}

describe("streaming in Node", () => {
  it("convertToStream into a hashing WritableStream, convertToBlob, deviceStream and abort", () => {
    const dir = mkdtempSync(join(scratch, "node-"));
    const out = execFileSync(process.execPath, [RUNNER, FIXTURES, dir], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    const report = JSON.parse(out) as StreamReport & { runtime: string };
    expect(report.runtime).toBe("node");
    expectStreamReport("node", report);
    expectQemuAccepts(dir, report);
  });
});

describe("streaming in Deno", () => {
  it.skipIf(!deno)("convertToStream into a hashing WritableStream, convertToBlob, deviceStream and abort", () => {
    const dir = mkdtempSync(join(scratch, "deno-"));
    const out = execFileSync(deno!, denoRunArgs(RUNNER, [FIXTURES, dir], [dir], [FIXTURES, dir]), {
      cwd: ROOT,
      encoding: "utf8",
      env: DENO_ENV,
      timeout: 60_000,
    });
    const report = JSON.parse(out) as StreamReport & { runtime: string };
    expect(report.runtime).toBe("deno");
    expectStreamReport("deno", report);
    expectQemuAccepts(dir, report);
  });
  if (!deno) console.warn("\n*** deno binary not found: SKIPPING the Deno streaming test ***\n");
});
