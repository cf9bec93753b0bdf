#!/usr/bin/env node
// `npm run web`: serves dist-web/ (built by `npm run build`, or now if missing) on
// http://127.0.0.1:PORT/ (PORT from $PORT, default 8080; 0 picks a free one) and prints the URL.
// Static files only: GET/HEAD of files under the folder, nothing else.
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
};

/** Starts a static server for `dir`; resolves to { url, close }. */
export function startWebServer(dir, port = 8080, host = "127.0.0.1") {
  const server = createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = normalize(join(dir, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(normalize(dir + sep)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": String(statSync(file).size),
      "cache-control": "no-cache",
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({ url: `http://${host === "127.0.0.1" ? "localhost" : host}:${actual}/`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { buildWeb, WEB_OUT } = await import("./build-web.mjs");
  if (!existsSync(join(WEB_OUT, "index.html"))) await buildWeb();
  const { url } = await startWebServer(WEB_OUT, Number(process.env.PORT ?? 8080));
  console.log(`vdisk web page: ${url}  (Ctrl-C stops it)`);
}
