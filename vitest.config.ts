import { playwright } from "@vitest/browser-playwright";
import { existsSync } from "node:fs";
import { configDefaults, defineConfig, type TestProjectInlineConfiguration } from "vitest/config";

const browserTests = "test/runtime/*.browser.test.ts";

/** Debian's Chromium (CI installs it); the playwright package downloads no browser. */
const chromium = process.env.VDISK_CHROMIUM ?? "/usr/bin/chromium";
const haveChromium = existsSync(chromium);
if (!haveChromium) {
  console.warn(`\n*** ${chromium} not found (apt-get install chromium, or set VDISK_CHROMIUM): SKIPPING the browser tests ***\n`);
}

/** Headless Chromium, driven by Playwright; the page loads `vdisk` with the browser condition. */
const browserProject: TestProjectInlineConfiguration = {
  extends: true,
  resolve: { conditions: ["browser"] },
  // Pre-bundled up front: a dependency discovered mid-run makes Vite reload the page.
  optimizeDeps: { include: ["fflate", "fzstd"] },
  test: {
    name: "browser",
    include: [browserTests],
    globalSetup: ["test/runtime/browser-global-setup.ts"],
    browser: {
      enabled: true,
      headless: true,
      screenshotFailures: false,
      provider: playwright({
        launchOptions: {
          executablePath: chromium,
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
          ],
        },
      }),
      instances: [{ browser: "chromium" }],
    },
  },
};

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, browserTests],
        },
      },
      ...(haveChromium ? [browserProject] : []),
    ],
  },
});
