// The assertions every runtime's report must pass: the answers qemu-img gave for the fixtures.
import { expect } from "vitest";
import expectedJson from "../fixtures/runtime-expected.json";
// @ts-expect-error plain JS module without declarations (it runs unchanged in Node 20 and Deno)
import { FIXTURES, normalizeMap } from "./scenario.mjs";

/** What make-runtime-fixtures.mjs recorded from qemu-img. */
export const expected = expectedJson;

interface ImageReport {
  skipped?: string;
  format?: string;
  size?: number;
  sha256?: string;
  samples?: string[];
  map?: unknown[];
}

/** A runtime's report as the scenario returns it. */
export interface RuntimeReport {
  entry: string;
  drivers: string[];
  /** The kernel `loadKernel()` gave; absent in builds without the Wasm kernel. */
  kernel?: string;
  images: Record<string, ImageReport>;
  written: ImageReport;
}

/** Checks one described image against qemu's answers for `name`. */
export function expectImageMatchesQemu(label: string, name: keyof typeof expected.images, got: ImageReport): void {
  const want = expected.images[name];
  expect(got.format, `${label}: format of ${name}`).toBe(want.format);
  expect(got.size, `${label}: size of ${name}`).toBe(expected.size);
  expect(got.sha256, `${label}: sha256 of the disk in ${name}`).toBe(want.sha256);
  expect(got.samples, `${label}: sample bytes of ${name}`).toEqual(want.samples);
  expect(got.map, `${label}: map of ${name} (qemu-img map, normalized)`).toEqual(normalizeMap(want.map));
}

/**
 * Checks a whole report: the entry the runtime loaded, every fixture (a fixture whose driver
 * this build lacks is allowed, loudly), and the disk written by the write scenario.
 */
export function expectReportMatchesQemu(label: string, report: RuntimeReport, entry: string): void {
  expect(report.entry, `${label}: the vdisk entry loaded`).toBe(entry);
  // Every supported runtime has WebAssembly with SIMD: falling back to the TS twin here means
  // the embedded module did not make it into this build or failed to load.
  if (report.kernel !== undefined) expect(report.kernel, `${label}: the kernel loadKernel() chose`).toBe("wasm");
  for (const name of FIXTURES as (keyof typeof expected.images)[]) {
    const got = report.images[name];
    expect(got, `${label}: report of ${name}`).toBeDefined();
    if (got!.skipped) {
      console.warn(`\n*** ${label}: SKIPPED ${name}: ${got!.skipped} ***\n`);
      continue;
    }
    expectImageMatchesQemu(label, name, got!);
  }
  // The write scenario copies pattern.raw's disk.
  const source = expected.images["pattern.raw"];
  expect(report.written.sha256, `${label}: sha256 of the disk written as ${report.written.format}`).toBe(source.sha256);
  expect(report.written.samples, `${label}: sample bytes of the written disk`).toEqual(source.samples);
}
