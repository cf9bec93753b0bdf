/**
 * DESIGN.md §2's layer table as code: which room of src/ may import which. Used by
 * test/unit/import-boundaries.test.ts over the real tree and over synthetic imports.
 */

/** The room a source file (path relative to src/, with `/`) belongs to. */
export function roomOf(path: string): string {
  if (path === "errors.ts") return "base";
  const [top, second] = path.split("/");
  switch (top) {
    case "codec":
    case "kernel":
    case "io":
      return "base";
    case "core":
    case "filters":
    case "ops":
    case "streams":
    case "nbd":
    case "cli":
      return top;
    case "adapters":
      return `adapters/${second}`;
    case "formats":
      if (second === "registry.ts") return "registry";
      if (second === "shared") return "formats/shared";
      return `format/${second}`;
    default:
      return "entry"; // index.ts, api.ts, node.ts, deno.ts, browser.ts
  }
}

/** Rooms each room may import from src/ (its own room is always allowed). */
const ALLOWED: Record<string, (to: string, from: string) => boolean> = {
  base: (to) => to === "base",
  core: (to) => to === "base",
  filters: (to) => to === "base" || to === "core",
  "formats/shared": (to) => to === "base" || to === "core",
  // A format: the engine contracts and the helpers below it, its own folder, formats/shared.
  format: (to, from) => to === "base" || to === "core" || to === "formats/shared" || to === from,
  registry: (to) => to === "base" || to === "core" || to.startsWith("format/") || to === "formats/shared",
  ops: (to) => ["base", "core", "filters", "registry"].includes(to),
  streams: (to) => ["base", "core", "filters", "registry", "ops"].includes(to),
  nbd: (to) => ["base", "core", "filters", "ops"].includes(to),
  // Adapters and entries may use anything below the faces.
  adapters: (to) => to !== "cli" && to !== "entry",
  entry: (to) => to !== "cli",
  // The CLI is a face: everything but the format folders (it asks capabilities and the registry).
  cli: (to) => !to.startsWith("format/"),
};

/** Rooms where `node:` modules may be imported. */
const NODE_ROOMS = new Set(["adapters/node", "cli", "entry"]);

/** One import that breaks a rule. */
export interface ImportViolation {
  readonly from: string;
  readonly to: string;
  readonly why: string;
}

/**
 * Checks one import: `from` is the importing file and `to` the imported file (both relative to
 * src/), or `to` is a bare module name (`node:fs`, `fflate`).
 */
export function checkImport(from: string, to: string, bare: boolean): ImportViolation | undefined {
  const a = roomOf(from);
  if (bare) {
    if (to.startsWith("node:") && !NODE_ROOMS.has(a)) return { from, to, why: `${a} may not import ${to}` };
    return undefined;
  }
  const b = roomOf(to);
  if (a === b && !a.startsWith("format/")) return undefined;
  const rule = ALLOWED[a.startsWith("format/") ? "format" : a.startsWith("adapters/") ? "adapters" : a];
  if (!rule) return { from, to, why: `unknown room ${a}` };
  if (a.startsWith("adapters/") && b.startsWith("adapters/") && a !== b) return { from, to, why: `${a} may not import ${b}` };
  return rule(b, a) ? undefined : { from, to, why: `${a} may not import ${b}` };
}

/** The module specifiers a TypeScript source imports (static, re-exports and dynamic). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}
