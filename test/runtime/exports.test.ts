// The package as others load it: every `exports` condition points at built files that export
// the runtime's surface, TypeScript picks the matching declarations, and the bin runs.
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
    // With the browser entry's declarations (the bundle has its exports), for attw and TypeScript.
    expect(pkg.exports["./vdisk.browser.js"]).toEqual({ types: "./dist/browser.d.ts", default: "./dist/vdisk.browser.js" });
    requireDist("vdisk.browser.js");
    const bundle = readFileSync(join(ROOT, "dist", "vdisk.browser.js"), "utf8");
    // One self-contained file: nothing left to resolve, no Node built-ins.
    expect(bundle).not.toMatch(/^\s*import\s[^;]*from\s*["'][^"']+["']/m);
    expect(bundle).not.toMatch(/["']node:[a-z]/);
  });
});

describe("TypeScript consumers", () => {
  // A project beside a node_modules/vdisk link to this package, as after `npm install vdisk`.
  function typeCheck(source: string, compilerOptions: Record<string, unknown>): string {
    const dir = mkdtempSync(join(tmpdir(), "vdisk-consumer-"));
    try {
      mkdirSync(join(dir, "node_modules"));
      symlinkSync(ROOT, join(dir, "node_modules", "vdisk"), "dir");
      writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
      writeFileSync(join(dir, "main.ts"), source);
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: { strict: true, noEmit: true, target: "ES2022", skipLibCheck: false, types: [], ...compilerOptions },
          files: ["main.ts"],
        }),
      );
      const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
      try {
        execFileSync(process.execPath, [tsc, "-p", dir, "--pretty", "false"], { encoding: "utf8" });
        return "";
      } catch (e) {
        return String((e as { stdout?: string }).stdout);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("a Node project (nodenext) gets the Node declarations: openImage(path)", () => {
    requireDist("node.d.ts");
    const out = typeCheck(
      `import { openImage, NodeFileBackend } from "vdisk";\nconst img = await openImage("disk.qcow2", { readOnly: true });\nconst n: number = img.size;\nexport { n, NodeFileBackend };\n`,
      // skipLibCheck as `tsc --init` sets it: the kernel's declarations name WebAssembly types,
      // which a Node project without the DOM library does not have.
      {
        module: "nodenext",
        moduleResolution: "nodenext",
        lib: ["ES2022"],
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules", "@types")],
        skipLibCheck: true,
      },
    );
    expect(out).toBe("");
  });

  it("a web project (bundler, browser condition) gets the browser declarations: openImage(Blob)", () => {
    requireDist("browser.d.ts");
    // One compile checks both ways: the Blob call must be accepted and the path call refused
    // (an unneeded @ts-expect-error is itself an error, TS2578).
    const out = typeCheck(
      `import { openImage, BlobBackend } from "vdisk";\nconst img = await openImage(new Blob([]));\nconst n: number = img.size;\n` +
        `// @ts-expect-error a path is no image source in a browser\nawait openImage("disk.qcow2");\nexport { n, BlobBackend };\n`,
      { module: "esnext", moduleResolution: "bundler", customConditions: ["browser"], lib: ["ES2022", "DOM"], skipLibCheck: true },
    );
    expect(out).toBe("");
  });
});

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
