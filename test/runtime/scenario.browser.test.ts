// The runtime scenario in headless Chromium, three ways a web page gets vdisk:
// `import "vdisk"` through the test bundler (browser condition), the same import bundled by
// esbuild (browser-global-setup.ts), and the prebuilt single file dist/vdisk.browser.js.
import { describe, expect, it } from "vitest";
import * as viaBundler from "vdisk";
import { expected, expectReportMatchesQemu, type RuntimeReport } from "./expect-report.js";
// @ts-expect-error plain JS module without declarations
import { FIXTURES, readScenario, writeScenario } from "./scenario.mjs";

type Vdisk = typeof viaBundler;

async function fixtureFiles(): Promise<Record<string, File>> {
  const files: Record<string, File> = {};
  for (const name of FIXTURES as string[]) {
    const res = await fetch(`/test/fixtures/${name}`);
    if (!res.ok) throw new Error(`Could not fetch fixture ${name}: HTTP ${res.status}`);
    files[name] = new File([await res.arrayBuffer()], name);
  }
  return files;
}

async function runScenario(vdisk: Vdisk): Promise<RuntimeReport> {
  const files = await fixtureFiles();
  // The overlay's backing file is found among the page's Files by name.
  const open = (name: string) => vdisk.openImage(files[name]!, { backing: "same-dir", files: Object.values(files) });
  let mem = new vdisk.MemoryBackend();
  const report = (await readScenario(vdisk, open, expected)) as Omit<RuntimeReport, "written">;
  const written = await writeScenario(
    vdisk,
    open,
    (format: string, size: number) => vdisk.createImage((mem = new vdisk.MemoryBackend()), { format, size }),
    // Reopened from a Blob of the bytes: what a page does to offer the image for download.
    (format: string) => vdisk.openImage(new Blob([mem.bytes().slice()]), { format }),
    expected,
  );
  return { ...report, written };
}

/** A module the test server serves at `url` (a path, not a module TypeScript can resolve). */
function served(url: string): Promise<Vdisk> {
  return import(/* @vite-ignore */ url) as Promise<Vdisk>;
}

const variants: Array<[string, () => Promise<Vdisk>]> = [
  ["import 'vdisk' (bundler, browser condition)", async () => viaBundler],
  ["esbuild bundle of import 'vdisk'", () => served("/.cache/runtime/vdisk-user-bundle.js")],
  ["dist/vdisk.browser.js", () => served("/dist/vdisk.browser.js")],
];

describe("Chromium", () => {
  it("runs in a browser page, not in Node", () => {
    expect(navigator.userAgent).toMatch(/Chrome\//);
    expect("process" in globalThis || "Deno" in globalThis).toBe(false);
  });

  for (const [label, load] of variants) {
    it(`${label}: reads the fixtures as qemu-img does and writes an image in memory`, async () => {
      const vdisk = await load();
      expectReportMatchesQemu(`chromium, ${label}`, await runScenario(vdisk), "browser");
    });
  }

  it("openImage(Blob) is read-only: writes fail with ERR_READ_ONLY", async () => {
    const files = await fixtureFiles();
    const img = await viaBundler.openImage(files["pattern.raw"]!, { format: "raw" });
    expect(img.readOnly).toBe(true);
    await expect(img.write(0, new Uint8Array(512))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await img.close();
  });

  it("createImage() without a target makes an image in memory", async () => {
    const img = await viaBundler.createImage({ format: "raw", size: 65536 });
    await img.write(4095, new Uint8Array([1, 2, 3]));
    expect(Array.from(await img.read(4094, 5))).toEqual([0, 1, 2, 3, 0]);
    await img.close();
  });
});
