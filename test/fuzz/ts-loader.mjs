// Module hooks for register-ts.mjs: `./x.js` resolves to `./x.ts` when only the .ts exists, and
// .ts files are transpiled (types stripped) with the project's own TypeScript. Transpiled text
// is cached in the temp directory by path, size and mtime, so later workers start fast.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { readFile, writeFile, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const cacheDir = join(tmpdir(), "vdisk-fuzz-ts-cache");
mkdirSync(cacheDir, { recursive: true });
let ts;

export async function resolve(specifier, context, next) {
  if ((specifier.startsWith(".") || specifier.startsWith("/")) && specifier.endsWith(".js") && context.parentURL) {
    const url = new URL(specifier, context.parentURL);
    const tsUrl = new URL(url.href.slice(0, -3) + ".ts");
    if (!existsSync(fileURLToPath(url)) && existsSync(fileURLToPath(tsUrl))) {
      return { url: tsUrl.href, format: "module", shortCircuit: true };
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith(".ts")) return next(url, context);
  const file = fileURLToPath(url);
  const st = statSync(file);
  const key = createHash("sha1").update(`${file}\0${st.size}\0${st.mtimeMs}`).digest("hex");
  const cached = join(cacheDir, `${key}.js`);
  if (existsSync(cached)) return { format: "module", source: await readFile(cached, "utf8"), shortCircuit: true };
  ts ??= (await import("typescript")).default;
  const out = ts.transpileModule(await readFile(file, "utf8"), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, isolatedModules: true },
  });
  const tmp = `${cached}.${process.pid}.tmp`;
  await writeFile(tmp, out.outputText);
  await rename(tmp, cached);
  return { format: "module", source: out.outputText, shortCircuit: true };
}
