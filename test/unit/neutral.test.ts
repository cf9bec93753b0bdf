// The runtime-neutral folders (core, io, codec, formats, kernel, ops, filters and the neutral entry) must
// type-check with only the ES2022 library and the host APIs of neutral-globals.d.ts: a `node:`
// import, `Buffer`, `process`, DOM or Deno there fails this test.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

function typeCheck(project: string): { ok: boolean; output: string } {
  try {
    execFileSync(process.execPath, [tsc, "-p", project, "--pretty", "false"], { cwd: root, encoding: "utf8" });
    return { ok: true, output: "" };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, output: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

describe("runtime neutrality", () => {
  it("tsconfig.neutral.json type-checks without Node, DOM or Deno types", () => {
    const { ok, output } = typeCheck("tsconfig.neutral.json");
    // The compiler's errors name each file and the Node/DOM API it used.
    expect(output).toBe("");
    expect(ok).toBe(true);
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
