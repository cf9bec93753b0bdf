// test/ is type-checked too (DESIGN.md §9): the Node-side tests with tsconfig.test.json, the
// Chromium tests with tsconfig.test-browser.json (browser condition, no Node types).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { typeCheckProject } from "../helpers/type-check.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A tsconfig file, with its comments dropped. */
function readConfig(name: string): { compilerOptions: Record<string, unknown>; include: string[]; exclude?: string[] } {
  return JSON.parse(readFileSync(join(root, name), "utf8").replace(/^\s*\/\/.*$/gm, ""));
}

// tsc over every test takes seconds, more on a busy machine.
describe("the tests type-check", { timeout: 240_000 }, () => {
  it("tsconfig.test.json (the Node-side tests and helpers) compiles", async () => {
    expect(await typeCheckProject("tsconfig.test.json")).toBe("");
  });

  it("tsconfig.test-browser.json (the Chromium tests, browser condition, no Node types) compiles", async () => {
    expect(await typeCheckProject("tsconfig.test-browser.json")).toBe("");
  });

  it("between them they cover every test file, and neither emits", () => {
    const node = readConfig("tsconfig.test.json");
    const browser = readConfig("tsconfig.test-browser.json");
    expect(node.include).toContain("test/**/*.ts");
    expect(node.compilerOptions.noEmit).toBe(true);
    expect(browser.include).toContain("test/**/*.browser.test.ts");
    expect(browser.compilerOptions.types).toEqual([]);
    // Left out of the Node project: the browser tests (checked by the other project) and the
    // Deno API check (checked by `deno check` in runtimes.test.ts).
    expect(node.exclude).toEqual([
      "test/**/*.browser.test.ts",
      "test/runtime/browser-entry.ts",
      "test/runtime/deno-api-check.ts",
      "test/unit/neutral-globals.d.ts",
    ]);
  });
});
