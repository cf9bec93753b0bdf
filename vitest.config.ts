import { playwright } from "@vitest/browser-playwright";
import { configDefaults, defineConfig } from "vitest/config";

const browserTests = "test/runtime/*.browser.test.ts";

/** Debian's Chromium (CI installs it); the playwright package downloads no browser. */
const chromium = process.env.VDISK_CHROMIUM ?? "/usr/bin/chromium";

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
      {
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
      },
    ],
  },
});
