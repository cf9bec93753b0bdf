// The runtime scenario in Node and Deno, each importing the package by name so that the
// package's own `exports` pick the entry (`node` → dist/node.js, `deno` → dist/deno.js), and
// the image each one wrote checked by qemu-img. Chromium runs it in scenario.browser.test.ts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expected, expectReportMatchesQemu, type RuntimeReport } from "./expect-report.js";
import { ROOT, findDeno, findQemuImg, requireDist, DENO_ENV, denoRunArgs } from "./tools.js";

const FIXTURES = join(ROOT, "test", "fixtures");
const RUNNER = join(ROOT, "test", "runtime", "run-scenario.mjs");
const deno = findDeno();
const qemuImg = findQemuImg();
let scratch = "";

type Report = RuntimeReport & { runtime: string; writtenFile: string };

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Report {
  const out = execFileSync(cmd, args, { cwd: ROOT, encoding: "utf8", env, timeout: 60_000 });
  return JSON.parse(out) as Report;
}

/** qemu-img's verdict on the image a runtime wrote: consistent, and the same disk as the fixture. */
function expectQemuAccepts(report: Report): void {
  if (!qemuImg) {
    console.warn("\n*** qemu-img not found: SKIPPING the qemu-img check of the written image ***\n");
    return;
  }
  const { format } = report.written;
  if (format === "qcow2") execFileSync(qemuImg, ["check", "-q", "-f", "qcow2", report.writtenFile]);
  // Exit status 0 means identical contents; 1 would throw here.
  execFileSync(qemuImg, ["compare", "-q", "-f", format!, "-F", "raw", report.writtenFile, join(FIXTURES, "pattern.raw")]);
}

beforeAll(() => {
  requireDist("node.js", "deno.js", "index.js");
  scratch = mkdtempSync(join(tmpdir(), "vdisk-runtime-"));
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("Node", () => {
  it("import 'vdisk' loads dist/node.js, reads the fixtures as qemu-img does and writes an image qemu-img accepts", () => {
    const dir = mkdtempSync(join(scratch, "node-"));
    const report = run(process.execPath, [RUNNER, FIXTURES, dir]);
    expect(report.runtime).toBe("node");
    expectReportMatchesQemu("node", report, "node");
    expectQemuAccepts(report);
  });
});

describe("Deno", () => {
  it.skipIf(!deno)(
    "import 'vdisk' loads dist/deno.js, reads the fixtures as qemu-img does and writes an image qemu-img accepts",
    () => {
      const dir = mkdtempSync(join(scratch, "deno-"));
      const report = run(deno!, denoRunArgs(RUNNER, [FIXTURES, dir], [dir], [FIXTURES, dir]), DENO_ENV);
      expect(report.runtime).toBe("deno");
      expectReportMatchesQemu("deno", report, "deno");
      expectQemuAccepts(report);
    },
  );
  if (!deno) console.warn("\n*** deno binary not found (node_modules/@deno/*, PATH): SKIPPING the Deno runtime test ***\n");

  it.skipIf(!deno)("without --allow-write, createImage(path) fails with an ImageError naming the file", () => {
    const dir = mkdtempSync(join(scratch, "deno-ro-"));
    const script = `import { createImage } from "vdisk";
      try { await createImage(${JSON.stringify(join(dir, "x.raw"))}, { format: "raw", size: 4096 }); console.log("created"); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    // The script comes on stdin: `deno run -` grants only the permissions given here.
    const out = execFileSync(
      deno!,
      ["run", "--cached-only", "--no-lock", "--no-prompt", "--node-modules-dir=manual", `--allow-read=${dir}`, "-"],
      {
        cwd: ROOT,
        input: script,
        encoding: "utf8",
        env: { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      },
    );
    const err = JSON.parse(out) as { name: string; code: string; message: string };
    expect(err.name).toBe("ImageError");
    expect(err.code).toBe("ERR_READ_ONLY");
    expect(err.message).toContain("x.raw");
  });
});

describe("Deno types", () => {
  it.skipIf(!deno)("the Deno API the adapter declares is what Deno's own declarations provide (deno check)", () => {
    const out = execFileSync(
      deno!,
      ["check", "--no-lock", "--quiet", "--node-modules-dir=manual", join(ROOT, "test", "runtime", "deno-api-check.ts")],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      },
    );
    expect(out).toBe("");
  });
});

describe("the fixtures", () => {
  it("match what qemu-img says about them now", () => {
    if (!qemuImg) {
      console.warn("\n*** qemu-img not found: SKIPPING the fixture re-check ***\n");
      return;
    }
    for (const [name, want] of Object.entries(expected.images)) {
      const info = JSON.parse(execFileSync(qemuImg, ["info", "--output=json", join(FIXTURES, name)], { encoding: "utf8" }));
      expect(info.format, name).toBe(want.format);
      expect(info["virtual-size"], name).toBe(expected.size);
    }
    execFileSync(qemuImg, ["compare", "-q", "-f", "qcow2", "-F", "raw", join(FIXTURES, "pattern.qcow2"), join(FIXTURES, "pattern.raw")]);
  });
});
