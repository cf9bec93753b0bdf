// The runtime-neutral folders (core, io, codec, formats, kernel, ops, filters and the neutral entry) must
// type-check with only the ES2022 library and the host APIs of neutral-globals.d.ts: a `node:`
// import, `Buffer`, `process`, DOM or Deno there fails this test.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { typeCheckProject } from "../helpers/type-check.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("runtime neutrality", () => {
  it("tsconfig.neutral.json type-checks without Node, DOM or Deno types", async () => {
    // The compiler's errors name each file and the Node/DOM API it used.
    expect(await typeCheckProject("tsconfig.neutral.json")).toBe("");
  });

  it("tsconfig.neutral.json loads no ambient types and no DOM library", () => {
    // Comments are allowed in tsconfig files; drop them before parsing.
    const text = readFileSync(join(root, "tsconfig.neutral.json"), "utf8").replace(/^\s*\/\/.*$/gm, "");
    const config = JSON.parse(text) as { compilerOptions: { lib: string[]; types: string[] }; include: string[] };
    expect(config.compilerOptions.types).toEqual([]);
    expect(config.compilerOptions.lib.map((l) => l.toLowerCase())).toEqual(["es2022"]);
    for (const folder of ["src/core", "src/io", "src/codec", "src/formats", "src/kernel", "src/ops", "src/filters"]) {
      expect(config.include).toContain(`${folder}/**/*.ts`);
    }
  });
});
