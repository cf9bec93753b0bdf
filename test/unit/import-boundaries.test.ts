// The layer table of DESIGN.md §2 holds for every import in src/: core imports no format and no
// runtime, ops names no format folder, a format never imports another, node: stays in the Node
// adapter and the faces. The checker itself is tested on imports the table forbids.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkImport, importsOf, type ImportViolation } from "../helpers/import-rules.js";

const src = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src");

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== "generated") out.push(...sourceFiles(p));
    } else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

function violationsInTree(): ImportViolation[] {
  const found: ImportViolation[] = [];
  for (const file of sourceFiles(src)) {
    const from = relative(src, file).split("\\").join("/");
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      const bare = !spec.startsWith(".");
      const to = bare ? spec : relative(src, normalize(join(dirname(file), spec))).split("\\").join("/").replace(/\.js$/, ".ts");
      const v = checkImport(from, to, bare);
      if (v) found.push(v);
    }
  }
  return found;
}

describe("import boundaries", () => {
  it("every import in src/ follows DESIGN.md's layer table", () => {
    expect(violationsInTree()).toEqual([]);
  });

  it("the checker flags core → formats, ops → formats, format → format and node: in core", () => {
    expect(checkImport("core/image-device.ts", "formats/qcow2/instance.ts", false)?.why).toBe("core may not import format/qcow2");
    expect(checkImport("core/open.ts", "formats/registry.ts", false)?.why).toBe("core may not import registry");
    expect(checkImport("ops/amend.ts", "formats/qcow2/amend.ts", false)?.why).toBe("ops may not import format/qcow2");
    expect(checkImport("formats/vhd/parent.ts", "formats/vmdk/descriptor.ts", false)?.why).toBe("format/vhd may not import format/vmdk");
    expect(checkImport("formats/vhd/parent.ts", "ops/convert.ts", false)?.why).toBe("format/vhd may not import ops");
    expect(checkImport("core/format.ts", "node:fs", true)?.why).toBe("core may not import node:fs");
    expect(checkImport("ops/open.ts", "formats/registry.ts", false)).toBeUndefined();
    expect(checkImport("formats/qcow2/instance.ts", "formats/shared/table-cache.ts", false)).toBeUndefined();
    expect(checkImport("adapters/node/opener.ts", "node:fs", true)).toBeUndefined();
  });

  it("importsOf finds static, re-export, side-effect and dynamic imports", () => {
    const text = `import a from "./a.js";\nimport type { B } from "../b.js";\nexport * from "./c.js";\nexport { d } from "./d.js";\nimport "./e.js";\nconst f = await import("./f.js");`;
    expect(importsOf(text)).toEqual(["./a.js", "../b.js", "./c.js", "./d.js", "./e.js", "./f.js"]);
  });
});
