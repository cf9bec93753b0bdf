#!/usr/bin/env node
// Builds the web page (web/) into dist-web/, a folder to serve as static files: the page and
// its worker bundled by esbuild (the worker's zstd encoder a chunk fetched only when used),
// index.html and style.css copied, and sw.js listing every file so the page works offline.
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "web");
export const WEB_OUT = join(root, "dist-web");

export async function buildWeb() {
  const esbuild = await import("esbuild");
  rmSync(WEB_OUT, { recursive: true, force: true });
  mkdirSync(WEB_OUT, { recursive: true });
  await esbuild.build({
    entryPoints: [join(web, "app.ts"), join(web, "worker.ts")],
    outdir: WEB_OUT,
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["browser"],
    minify: true,
    keepNames: true,
    legalComments: "none",
    logLevel: "warning",
  });
  for (const f of ["index.html", "style.css"]) copyFileSync(join(web, f), join(WEB_OUT, f));
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(relative(WEB_OUT, p).split("\\").join("/"));
    }
  };
  walk(WEB_OUT);
  const version = files.map((f) => `${f}:${statSync(join(WEB_OUT, f)).size}`).join("|");
  // Cache first, then the network: after one visit the page needs no network at all.
  writeFileSync(
    join(WEB_OUT, "sw.js"),
    `const CACHE = ${JSON.stringify(`vdisk-${hash(version)}`)};
const FILES = ${JSON.stringify(["./", ...files])};
self.addEventListener("install", (e) => e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting())));
self.addEventListener("activate", (e) => e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim())));
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) return;
  e.respondWith(caches.match(e.request, { ignoreSearch: true }).then((hit) => hit || fetch(e.request)));
});
`,
  );
  return WEB_OUT;
}

function hash(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h.toString(16);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildWeb();
  console.log(`web: ${relative(root, WEB_OUT)}/`);
}
