// The package as others load it: every `exports` condition points at built files that export
// the runtime's surface, TypeScript picks the matching declarations, and the bin runs.
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { ROOT, requireDist } from "./tools.js";

interface Target {
  types?: string;
  default: string;
}
interface PackageJson {
  name: string;
  type: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: { ".": Record<string, Target | string>; [sub: string]: unknown };
}

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as PackageJson;

/** Resolves "." for `conditions` the way Node's algorithm does (first matching key in order). */
function resolveExport(conditions: string[]): { types?: string; js: string } {
  const root = pkg.exports["."];
  let types: string | undefined;
  for (const [key, value] of Object.entries(root)) {
    if (key === "types") {
      types ??= value as string;
      continue;
    }
    if (key !== "default" && !conditions.includes(key)) continue;
    if (typeof value === "string") return { types, js: value };
    return { types: value.types ?? types, js: value.default };
  }
  throw new Error(`No export of "." matches ${conditions.join(", ")}`);
}

const runtimes: Array<[string, string[], string[]]> = [
  // label, conditions, names only that entry exports
  ["deno", ["deno", "node", "import"], ["DenoFileBackend", "denoFileOpener"]],
  ["node", ["node", "import"], ["NodeFileBackend", "nodeFileOpener"]],
  ["browser", ["browser", "import"], ["BlobBackend", "blobFileOpener"]],
  ["default", ["import"], []],
];

describe("package.json exports", () => {
  it("is the ESM package 'vdisk' with a bin", () => {
    expect(pkg.name).toBe("vdisk");
    expect(pkg.type).toBe("module");
    expect(pkg.bin.vdisk).toBe("./dist/cli/main.js");
  });

  for (const [label, conditions, own] of runtimes) {
    it(`the ${label} condition resolves to built JS and declarations with openImage and createImage`, async () => {
      requireDist("index.js");
      const { types, js } = resolveExport(conditions);
      expect(existsSync(join(ROOT, js)), js).toBe(true);
      expect(types, `types of ${label}`).toBeDefined();
      expect(existsSync(join(ROOT, types!)), types).toBe(true);
      const mod = (await import(pathToFileURL(join(ROOT, js)).href)) as Record<string, unknown>;
      expect(typeof mod.openImage).toBe("function");
      expect(typeof mod.createImage).toBe("function");
      expect(typeof mod.MemoryBackend).toBe("function");
      for (const name of own) expect(typeof mod[name], `${js} exports ${name}`).toBe("function");
      for (const [other, , names] of runtimes) {
        if (other === label) continue;
        for (const name of names) expect(mod[name], `${js} must not export ${name}`).toBeUndefined();
      }
    });
  }

  it("main/types (for old resolvers) are the Node entry; the browser bundle is exported", () => {
    expect(pkg.main).toBe(resolveExport(["node"]).js);
    expect(pkg.types).toBe(resolveExport(["node"]).types);
    expect(pkg.exports["./vdisk.browser.js"]).toEqual({
      types: "./dist/vdisk.browser.d.ts",
      default: "./dist/vdisk.browser.js",
    });
    requireDist("vdisk.browser.js", "vdisk.browser.d.ts");
    const bundle = readFileSync(join(ROOT, "dist", "vdisk.browser.js"), "utf8");
    // One self-contained file: nothing left to resolve, no Node built-ins.
    expect(bundle).not.toMatch(/^\s*import\s[^;]*from\s*["'][^"']+["']/m);
    expect(bundle).not.toMatch(/["']node:[a-z]/);
  });

  it("TypeScript's bundler resolution, which sets no runtime condition, gets the browser declarations", () => {
    // TypeScript matches only "types", "import" and customConditions here, so the fallback
    // "types" is what Vite projects see; test/runtime/types.test.ts type-checks such a project.
    expect(resolveExport(["types", "import"]).types).toBe(resolveExport(["browser"]).types);
  });

  it("the default entry (a bundler with no runtime condition) refuses a Blob or a path with a TypeError naming the fix", async () => {
    const { js } = resolveExport(["import"]);
    const neutral = (await import(pathToFileURL(join(ROOT, js)).href)) as {
      openImage(source: unknown): Promise<unknown>;
      createImage(target: unknown, options?: unknown): Promise<unknown>;
    };
    await expect(neutral.openImage(new Blob([new Uint8Array(512)]))).rejects.toThrow(TypeError);
    await expect(neutral.openImage("disk.qcow2")).rejects.toThrow(/"browser" \(or "node"\) condition/);
    await expect(neutral.createImage({ format: "raw", size: 512 })).rejects.toThrow(/target must be an IoBackend/);
  });
});

// TypeScript consumers (Node, web, the prebuilt bundle) are type-checked against the packed
// package in test/runtime/types.test.ts.

describe("bin", () => {
  const cli = join(ROOT, pkg.bin.vdisk);
  it.skipIf(!existsSync(cli))("dist/cli/main.js is executable and runs, also through a .bin symlink as npm installs it", () => {
    accessSync(cli, constants.X_OK);
    expect(execFileSync(cli, ["--help"], { encoding: "utf8" })).toMatch(/vdisk/);
    const dir = mkdtempSync(join(tmpdir(), "vdisk-bin-"));
    try {
      const link = join(dir, "vdisk");
      symlinkSync(cli, link);
      expect(execFileSync(link, ["--version"], { encoding: "utf8" })).toContain((pkg as { version?: string }).version);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  if (!existsSync(cli)) console.warn("\n*** dist/cli/main.js is not built (no CLI yet): SKIPPING the bin test ***\n");
});
