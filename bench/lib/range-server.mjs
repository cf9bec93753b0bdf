// A static HTTP server for benchmarks: one file, single byte ranges, a strong ETag, and a fixed
// delay before every answer (a high-latency link). Counts the requests it answers.
import { createServer } from "node:http";

/** Serves `bytes` at every path on 127.0.0.1 with `latencyMs` before each answer. */
export async function startRangeServer(bytes, latencyMs) {
  const stats = { requests: 0, bytes: 0 };
  const server = createServer((req, res) => {
    stats.requests++;
    setTimeout(() => {
      const headers = { etag: '"bench-1"', "accept-ranges": "bytes", "last-modified": new Date(0).toUTCString() };
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      if (!m) {
        res.writeHead(200, { ...headers, "content-length": String(bytes.length) });
        res.end(req.method === "HEAD" ? undefined : bytes);
        return;
      }
      const first = Number(m[1]);
      const last = Math.min(m[2] === "" ? bytes.length - 1 : Number(m[2]), bytes.length - 1);
      if (first >= bytes.length) {
        res.writeHead(416, { ...headers, "content-range": `bytes */${bytes.length}` }).end();
        return;
      }
      const body = bytes.subarray(first, last + 1);
      stats.bytes += body.length;
      res.writeHead(206, { ...headers, "content-range": `bytes ${first}-${last}/${bytes.length}`, "content-length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
    }, latencyMs);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/disk.qcow2`,
    stats,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
