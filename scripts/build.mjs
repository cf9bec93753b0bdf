#!/usr/bin/env node
// Builds everything `npm install` must produce: TypeScript output and declarations in dist/.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (cmd, args) => execFileSync(process.execPath, [join(root, "node_modules", ...cmd), ...args], { cwd: root, stdio: "inherit" });

run(["typescript", "bin", "tsc"], ["-p", "tsconfig.json"]);
const cli = join(root, "dist", "cli", "main.js");
if (existsSync(cli)) chmodSync(cli, 0o755);
