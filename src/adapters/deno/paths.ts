/**
 * Path arithmetic for the Deno adapter (Deno has no `path` module without `node:` or `jsr:`
 * imports, and this package imports neither there): enough to resolve a backing file name
 * next to the image that names it.
 * @module
 */

const SEP = /[\\/]/;

/** `true` for `/x`, `\\server\x` and `C:\x` / `C:/x`. */
export function isAbsolutePath(p: string): boolean {
  return p.startsWith("/") || p.startsWith("\\") || /^[A-Za-z]:[\\/]/.test(p);
}

/** Removes `.` and empty segments and folds `..`; keeps the root (`/`, `C:`). Uses `/`. */
export function normalizePath(p: string): string {
  const drive = /^[A-Za-z]:/.test(p) ? p.slice(0, 2) : "";
  const rest = p.slice(drive.length);
  const absolute = rest.length > 0 && SEP.test(rest[0]!);
  const out: string[] = [];
  for (const part of rest.split(SEP)) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      // Above the root stays at the root, as the OS does; a relative path keeps its leading `..`.
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(part);
  }
  const body = out.join("/");
  if (absolute) return `${drive}/${body}`;
  return drive + (body || ".");
}

/** The directory part of `p` (`.` when it has none). */
export function dirnamePath(p: string): string {
  const i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\"));
  if (i < 0) return ".";
  if (i === 0) return p[0]!;
  return p.slice(0, i);
}

/** Resolves `name` against the directory of the file `from`, then against `cwd`; absolute and normalized. */
export function resolveBeside(cwd: string, from: string, name: string): string {
  if (isAbsolutePath(name)) return normalizePath(name);
  const base = isAbsolutePath(from) ? from : `${cwd}/${from}`;
  return normalizePath(`${dirnamePath(base)}/${name}`);
}
