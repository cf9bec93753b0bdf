// Before the Chromium tests: bundle `import … from "vdisk"` with esbuild and the `browser`
// condition, as a web app's build would, so the page can load the result.
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where the test bundle goes (ignored by git). */
export const USER_BUNDLE = join(root, ".cache", "runtime", "vdisk-user-bundle.js");

export default async function setup(): Promise<void> {
  if (!existsSync(join(root, "dist", "browser.js"))) {
    throw new Error("dist/ is missing: run `npm run build` (npm install runs it) before the browser tests");
  }
  await build({
    entryPoints: [join(root, "test", "runtime", "browser-entry.ts")],
    outfile: USER_BUNDLE,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "warning",
  });
}
