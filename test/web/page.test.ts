// The web page as a person uses it, in headless Chromium (playwright-core, the system browser):
// pick a qcow2 made by qemu-img, wait for the info table, the map and the check, convert it to
// vmdk, download the result and compare it with the source by qemu-img; then a bad file gives
// a sentence, not a stack trace. A screenshot is kept in test-output/web.png.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, qemuImg, qemuImgStatus, tempDir } from "../helpers/qemu.js";
import { pattern } from "../helpers/random.js";
import { startHttpServer } from "../helpers/http-server.js";
import { readFileSync } from "node:fs";
import { ROOT } from "../runtime/tools.js";

const CHROMIUM = process.env.VDISK_CHROMIUM ?? "/usr/bin/chromium";
const WEB = join(ROOT, "dist-web");
const OUT = join(ROOT, "test-output");
const MIB = 1024 * 1024;

type Browser = import("playwright-core").Browser;

describe.skipIf(!HAVE_QEMU || !existsSync(CHROMIUM))("web page in Chromium", () => {
  const tmp = tempDir("vdisk-web-");
  let browser: Browser;
  let server: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    if (!existsSync(join(WEB, "index.html"))) throw new Error("dist-web/ is missing: run `npm run build`");
    // @ts-expect-error plain JS module without declarations
    const { startWebServer } = (await import("../../scripts/serve-web.mjs")) as {
      startWebServer(dir: string, port: number): Promise<{ url: string; close(): Promise<void> }>;
    };
    server = await startWebServer(WEB, 0);
    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    // 64 MiB: data at the start, a hole, data at 40 MiB, zeros qemu-img may keep as a hole.
    const raw = new Uint8Array(64 * MIB);
    raw.set(pattern(8 * MIB, 3), 0);
    raw.set(pattern(6 * MIB, 4), 40 * MIB);
    writeFileSync(tmp.path("disk.raw"), raw);
    qemuImg("convert", "-f", "raw", "-O", "qcow2", tmp.path("disk.raw"), tmp.path("disk.qcow2"));
    writeFileSync(tmp.path("broken.qcow2"), new Uint8Array([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 9, ...new Uint8Array(504)]));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    tmp.cleanup();
  });

  it("opens a picked file, shows info, map and check, converts and downloads an identical image", async () => {
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 1200 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.locator("#file").setInputFiles(tmp.path("disk.qcow2"));
    await page.locator('#map[data-ready="true"]').waitFor({ timeout: 30_000 });
    await page.locator('#check[data-done="true"]').waitFor({ timeout: 30_000 });
    const info = await page.locator("#info").innerText();
    expect(info).toMatch(/format\s+qcow2/);
    expect(info).toMatch(/virtual-size\s+64 MiB/);
    expect(await page.locator("#check").innerText()).toBe("No errors were found on the image.");
    // The map shows data (blue) at the start and unallocated (grey) in the middle.
    const colours = await page.evaluate(() => {
      const c = document.getElementById("map") as HTMLCanvasElement;
      const ctx = c.getContext("2d")!;
      const at = (fraction: number) => Array.from(ctx.getImageData(Math.floor(c.width * fraction), 10, 1, 1).data.slice(0, 3));
      return { start: at(0.02), middle: at(0.4), late: at(0.68) };
    });
    expect(colours.start).toEqual([0x2f, 0x6f, 0xdb]);
    expect(colours.middle).toEqual([0xe6, 0xe6, 0xe6]);
    expect(colours.late).toEqual([0x2f, 0x6f, 0xdb]);
    await page.locator("#zoom-in").click();
    expect(await page.locator("#map-range").innerText()).toMatch(/of 64 MiB/);
    await page.locator("#zoom-reset").click();

    await page.locator("#format").selectOption("vmdk");
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 60_000 }),
      (async () => {
        await page.locator("#convert").click();
        await page.locator("#download").click({ timeout: 60_000 });
      })(),
    ]);
    expect(download.suggestedFilename()).toBe("disk.vmdk");
    const saved = tmp.path("downloaded.vmdk");
    await download.saveAs(saved);
    const r = qemuImgStatus("compare", "-f", "qcow2", "-F", "vmdk", tmp.path("disk.qcow2"), saved);
    expect(r.stdout + r.stderr).toMatch(/Images are identical/);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "web.png"), fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  }, 120_000);

  it("keeps a conversion in OPFS and offers it for download", async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.locator("#file").setInputFiles(tmp.path("disk.qcow2"));
    await page.locator('#check[data-done="true"]').waitFor({ timeout: 30_000 });
    await page.locator("#format").selectOption("raw");
    await page.locator("#opfs").check();
    await page.locator("#convert").click();
    await page.locator("#download").waitFor({ timeout: 60_000 });
    expect(await page.locator("#result").innerText()).toMatch(/kept in this browser's storage/);
    const stored = await page.evaluate(async () => (await (await (await navigator.storage.getDirectory()).getFileHandle("disk.raw")).getFile()).size);
    expect(stored).toBe(64 * 1024 * 1024);
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#download").click()]);
    await download.saveAs(tmp.path("opfs.raw"));
    expect(qemuImgStatus("compare", "-f", "qcow2", "-F", "raw", tmp.path("disk.qcow2"), tmp.path("opfs.raw")).status).toBe(0);
    await context.close();
  }, 120_000);

  it("opens a pasted URL (Range requests to another origin)", async () => {
    const remote = await startHttpServer(readFileSync(tmp.path("disk.qcow2")));
    remote.behaviour.cors = true;
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      await page.locator("#url").fill(remote.url);
      await page.locator("#url-form button").click();
      await page.locator('#map[data-ready="true"]').waitFor({ timeout: 30_000 });
      expect(await page.locator("#info").innerText()).toMatch(/format\s+qcow2/);
      expect(remote.requests.filter((r) => r.method === "GET").every((r) => r.range !== undefined)).toBe(true);
      await page.close();
    } finally {
      await remote.close();
    }
  }, 60_000);

  it("Cancel stops a conversion, with progress shown meanwhile", async () => {
    const big = new Uint8Array(256 * MIB);
    for (let off = 0; off < big.length; off += 8 * MIB) big.set(pattern(8 * MIB, off / MIB), off);
    writeFileSync(tmp.path("big.raw"), big);
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.locator("#file").setInputFiles(tmp.path("big.raw"));
    await page.locator('#check[data-done="true"]').waitFor({ timeout: 30_000 });
    await page.locator("#format").selectOption("qcow2");
    await page.locator("#compress").check();
    await page.locator("#convert").click();
    await page.waitForFunction(() => (document.getElementById("progress") as HTMLProgressElement).value > 0, null, { timeout: 30_000 });
    await page.locator("#cancel").click();
    await page.waitForFunction(() => document.getElementById("result")!.textContent!.includes("cancelled"), null, { timeout: 10_000 });
    expect(await page.locator("#download").count()).toBe(0);
    expect(await page.locator("#convert").isEnabled()).toBe(true);
    await page.close();
  }, 120_000);

  it("works with no network after the first load (service worker)", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    // Reload once so the page is controlled, then cut the network and load it again.
    await page.reload();
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 10_000 });
    await context.setOffline(true);
    await page.reload();
    await page.locator("#file").setInputFiles(tmp.path("disk.qcow2"));
    await page.locator('#check[data-done="true"]').waitFor({ timeout: 30_000 });
    expect(await page.locator("#info").innerText()).toMatch(/format\s+qcow2/);
    await context.close();
  }, 60_000);

  it("a broken image gives one sentence, not a stack trace", async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.locator("#file").setInputFiles(tmp.path("broken.qcow2"));
    const box = page.locator("#error");
    await box.waitFor({ state: "visible", timeout: 30_000 });
    const text = await box.innerText();
    expect(text.length).toBeGreaterThan(10);
    expect(text).not.toMatch(/\n\s*at |\.js:\d+/);
    await page.close();
  }, 60_000);
});
