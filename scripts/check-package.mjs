#!/usr/bin/env node
// The package as npm would publish it: `npm pack` (of the current dist/; run `npm run build`
// first), then publint and arethetypeswrong on the tarball. ESM only (Node ≥ 20, Deno,
// bundlers), so attw's node10 and CommonJS-require resolutions do not apply (--profile esm-only).
// Exits non-zero when either tool reports an error.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = mkdtempSync(join(tmpdir(), "vdisk-pack-"));
const bin = (name) => join(root, "node_modules", ".bin", name);
let status = 0;
try {
  const name = execFileSync("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", out], { cwd: root, encoding: "utf8" }).trim();
  const tarball = join(out, name.split("\n").pop());
  for (const [tool, args] of [
    ["publint", ["--strict", tarball]],
    ["attw", ["--profile", "esm-only", tarball]],
  ]) {
    try {
      execFileSync(bin(tool), args, { cwd: root, stdio: "inherit" });
    } catch (e) {
      console.error(`check-package: ${tool} reported errors`);
      status = e.status || 1;
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
process.exit(status);
