// convertImage as a library user runs it, in Node, Deno and a web page bundled by esbuild and
// loaded in headless Chromium: a qcow2 made by qemu-img is converted to VHDX once to the end and
// once with an AbortController aborted half-way (scenario.mjs). qemu-img judges the results:
// the full target checks clean and compares equal to the source; the aborted run rejected with
// AbortError and its partial target opens and checks clean (and is really partial).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error plain JS module without declarations (it runs unchanged in Node 20 and Deno)
import { ABORT_AT, CONVERT_TARGET } from "./scenario.mjs";
import { ROOT, findChromium, findDeno, findQemuImg, requireDist, DENO_ENV, denoRunArgs } from "./tools.js";

const qemuImg = findQemuImg();
const deno = findDeno();
const chromium = findChromium();
const RUNNER = join(ROOT, "test", "runtime", "run-convert.mjs");
const MIB = 1 << 20;
/** The source's virtual size and the ranges holding data; the rest reads as zeros. */
const SIZE = 16 * MIB;
const DATA: Array<[number, number]> = [
  [0, 2 * MIB],
  [3 * MIB + 4096, 3 * MIB + 4096 + 102400],
  [6 * MIB, 9 * MIB],
  [10 * MIB, 14 * MIB],
  [SIZE - MIB / 2, SIZE],
];
let scratch = "";
let source = "";

interface Progress {
  done: number;
  total: number;
}
interface CheckSummary {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  messages: string[];
}
interface Run {
  progress: Progress[];
  stats?: { dataBytes: number };
  error?: { name: string; message: string; isSignalReason: boolean };
  rejectedAfterMs?: number;
  aborted: boolean;
  reopened: { format: string; size: number; check: CheckSummary };
}
/** The two target files of a run. */
interface Targets {
  full: string;
  aborted: string;
}
interface ConvertReport {
  runtime: string;
  entry: string;
  full: Run;
  aborted: Run;
}

if (!qemuImg) {
  console.warn("\n*** qemu-img not found: SKIPPING the convert runtime tests (it makes and judges the images) ***\n");
}

beforeAll(() => {
  if (!qemuImg) return;
  requireDist("node.js", "deno.js", "browser.js");
  scratch = mkdtempSync(join(tmpdir(), "vdisk-convert-"));
  // Deterministic bytes (xorshift32) in the data ranges, zeros between; qemu-img makes the qcow2.
  const disk = new Uint8Array(SIZE);
  let x = 0x9e3779b9;
  for (const [start, end] of DATA) {
    for (let i = start; i < end; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      disk[i] = x & 0xff;
    }
  }
  const raw = join(scratch, "source.raw");
  writeFileSync(raw, disk);
  source = join(scratch, "source.qcow2");
  execFileSync(qemuImg, ["convert", "-f", "raw", "-O", "qcow2", raw, source]);
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs qemu-img; resolves to its exit status (0 clean/identical, 1 different, 2 error, 3 leaks…). */
function qemuStatus(args: string[]): number {
  try {
    execFileSync(qemuImg!, args, { stdio: "pipe" });
    return 0;
  } catch (e) {
    const status = (e as { status?: number }).status;
    if (typeof status !== "number") throw e;
    return status;
  }
}

function expectMonotonic(label: string, progress: Progress[]): void {
  expect(progress.length, `${label}: progress was reported`).toBeGreaterThan(1);
  expect(progress[0], `${label}: progress starts at 0`).toEqual({ done: 0, total: SIZE });
  for (let i = 1; i < progress.length; i++) {
    expect(progress[i]!.total, `${label}: progress total`).toBe(SIZE);
    const step = `${label}: progress step ${i} moves forward`;
    expect(progress[i]!.done, step).toBeGreaterThanOrEqual(progress[i - 1]!.done);
  }
}

function expectCleanReopen(label: string, run: Run): void {
  expect(run.reopened.format, `${label}: reopened format`).toBe(CONVERT_TARGET.format);
  expect(run.reopened.size, `${label}: reopened size`).toBe(SIZE);
  expect(run.reopened.check, `${label}: vdisk's check of the reopened target`).toMatchObject({
    corruptions: 0,
    checkErrors: 0,
  });
}

/**
 * Every assertion on one runtime's report and its two target files: `expectedEntry` is the
 * vdisk entry that runtime must have loaded.
 */
function expectConvertReport(report: ConvertReport, expectedEntry: string, files: Targets): void {
  const label = report.runtime;
  expect(report.entry, `${label}: the vdisk entry loaded`).toBe(expectedEntry);

  const { full, aborted } = report;
  expect(full.error, `${label}: the full convert succeeded`).toBeUndefined();
  expect(full.aborted).toBe(false);
  expectMonotonic(`${label}, full`, full.progress);
  expect(full.progress.at(-1), `${label}: progress ends at total`).toEqual({ done: SIZE, total: SIZE });
  expect(full.stats!.dataBytes, `${label}: data written`).toBeGreaterThan(0);
  expectCleanReopen(`${label}, full`, full);
  const fullCheck = qemuStatus(["check", "-q", "-f", "vhdx", files.full]);
  expect(fullCheck, `${label}: qemu-img check of the full target`).toBe(0);
  expect(
    qemuStatus(["compare", "-q", "-f", "vhdx", "-F", "qcow2", files.full, source]),
    `${label}: qemu-img compare of the full target with the source (0 = identical)`,
  ).toBe(0);

  expect(aborted.aborted, `${label}: the abort run reached ${ABORT_AT} and aborted`).toBe(true);
  expect(aborted.error, `${label}: the aborted convert rejected with the signal's reason`).toMatchObject({
    name: "AbortError",
    isSignalReason: true,
  });
  expect(aborted.stats).toBeUndefined();
  expectMonotonic(`${label}, aborted`, aborted.progress);
  const last = aborted.progress.at(-1)!.done;
  expect(last, `${label}: progress reached the abort point`).toBeGreaterThanOrEqual(ABORT_AT * SIZE);
  expect(last, `${label}: progress stopped before the end`).toBeLessThan(SIZE);
  expectCleanReopen(`${label}, aborted`, aborted);
  const partialCheck = qemuStatus(["check", "-q", "-f", "vhdx", files.aborted]);
  expect(partialCheck, `${label}: qemu-img check of the partial target`).toBe(0);
  expect(
    qemuStatus(["compare", "-q", "-f", "vhdx", "-F", "qcow2", files.aborted, source]),
    `${label}: the partial target differs from the source (1), so the convert really stopped`,
  ).toBe(1);
  console.log(`${label}: aborted at ${ABORT_AT * 100}%, rejected ${aborted.rejectedAfterMs} ms after abort(), ` +
    `progress stopped at ${last} of ${SIZE}`);
}

describe.skipIf(!qemuImg)("convertImage qcow2 → vhdx with progress and abort", { timeout: 240_000 }, () => {
  it("Node: import 'vdisk' (dist/node.js), targets are files", () => {
    const dir = mkdtempSync(join(scratch, "node-"));
    const options = { cwd: ROOT, encoding: "utf8", timeout: 120_000 } as const;
    const out = execFileSync(process.execPath, [RUNNER, source, dir], options);
    const report = JSON.parse(out) as ConvertReport & { files: Targets };
    expect(report.runtime).toBe("node");
    expectConvertReport(report, "node", report.files);
  });

  it.skipIf(!deno)("Deno: import 'vdisk' (dist/deno.js), targets are files", () => {
    const dir = mkdtempSync(join(scratch, "deno-"));
    const out = execFileSync(deno!, denoRunArgs(RUNNER, [source, dir], [dir], [source, dir]), {
      cwd: ROOT,
      encoding: "utf8",
      env: DENO_ENV,
      timeout: 120_000,
    });
    const report = JSON.parse(out) as ConvertReport & { files: Targets };
    expect(report.runtime).toBe("deno");
    expectConvertReport(report, "deno", report.files);
  });

  it.skipIf(!chromium)("a page bundled by esbuild, in headless Chromium: a File in, targets in memory", async () => {
    const dir = mkdtempSync(join(scratch, "chromium-"));
    const page = join(dir, "page.js");
    await build({
      entryPoints: [join(ROOT, "test", "runtime", "convert-page.mjs")],
      outfile: page,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      logLevel: "warning",
    });
    const report = await runInChromium(chromium!, page, source);
    const files = { full: join(dir, "full.vhdx"), aborted: join(dir, "aborted.vhdx") };
    writeFileSync(files.full, Buffer.from(report.images.full, "base64"));
    writeFileSync(files.aborted, Buffer.from(report.images.aborted, "base64"));
    expect(report.runtime).toBe("chromium");
    expectConvertReport(report, "browser", files);
  });
  if (!deno) console.warn("\n*** deno binary not found: SKIPPING the Deno convert test ***\n");
  if (!chromium) {
    console.warn("\n*** Chromium not found (VDISK_CHROMIUM, /usr/bin/chromium): SKIPPING the page convert test ***\n");
  }
});

/** What convert-page.mjs puts on the page's global object. */
interface PageGlobal {
  runConvertScenario(url: string): Promise<unknown>;
}

/**
 * Loads `bundle` as the module script of a page at http://vdisk.test/ (served by Playwright's
 * request interception: no server, no network) with the source image beside it, and runs the
 * page's `runConvertScenario`.
 */
async function runInChromium(
  executablePath: string,
  bundle: string,
  sourceFile: string,
): Promise<ConvertReport & { images: Targets }> {
  const { chromium: launcher } = await import("playwright-core");
  const browser = await launcher.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const routes: Record<string, { body: Buffer | string; contentType: string }> = {
      "/": { body: '<!doctype html><script type="module" src="/page.js"></script>', contentType: "text/html" },
      "/page.js": { body: readFileSync(bundle), contentType: "text/javascript" },
      "/source.qcow2": { body: readFileSync(sourceFile), contentType: "application/octet-stream" },
    };
    await page.route("http://vdisk.test/**", (route) => {
      const r = routes[new URL(route.request().url()).pathname];
      return r ? route.fulfill({ status: 200, ...r }) : route.fulfill({ status: 404, body: "not found" });
    });
    await page.goto("http://vdisk.test/");
    // Both functions run in the page (Playwright sends their source): they can name only page globals.
    await page.waitForFunction("typeof globalThis.runConvertScenario === 'function'");
    expect(await page.evaluate(() => navigator.userAgent)).toMatch(/Chrome\//);
    const run = (url: string) => (globalThis as unknown as PageGlobal).runConvertScenario(url);
    const report = await page.evaluate(run, "/source.qcow2");
    expect(errors, "errors on the page").toEqual([]);
    return report as ConvertReport & { images: Targets };
  } finally {
    await browser.close();
  }
}
