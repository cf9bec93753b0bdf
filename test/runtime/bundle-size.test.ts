// The bundle budget of issue 11, checked on the built package the way a page's bundler sees it
// (scripts/size.mjs: esbuild, minified, browser condition, package.json's exports/sideEffects).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, requireDist } from "./tools.js";

describe("bundle size", () => {
  it("read-only openImage ≤ 150 KB gzip with every format, ≤ 60 KB with one (vdisk/lite)", () => {
    requireDist("browser.js", "lite.js");
    let out = "";
    let status = 0;
    try {
      out = execFileSync(process.execPath, [join(ROOT, "scripts", "size.mjs"), "--check"], { cwd: ROOT, encoding: "utf8" });
    } catch (e) {
      status = (e as { status?: number }).status ?? 1;
      out = String((e as { stdout?: string }).stdout ?? "");
    }
    console.log(out);
    expect(out).not.toMatch(/FAILED|OVER/);
    expect(status).toBe(0);
  });
});
