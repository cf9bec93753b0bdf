/**
 * A small static-file HTTP server on 127.0.0.1 for the HTTP backend tests: single byte ranges,
 * ETag / Last-Modified / If-Range, and switches for the misbehaviour under test (no Range
 * support, compressed bodies, failing requests, a file that changes, short bodies). Written
 * here from RFC 9110's rules, independently of the code under test.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";

/** What the server does; every field may be changed while it runs. */
export interface ServerBehaviour {
  /** Ignore `Range` and answer 200 with the whole file. */
  noRanges?: boolean;
  /** Send bodies gzip-compressed with `Content-Encoding: gzip`. */
  gzip?: boolean;
  /** Answer the next N requests with 503. */
  fail503?: number;
  /** Drop the connection of the next N requests without answering. */
  drop?: number;
  /** Send no ETag (then Last-Modified is the validator). */
  noEtag?: boolean;
  /** Send no validator at all. */
  noValidators?: boolean;
  /** Send ranged bodies one byte short of what Content-Range says. */
  shortBody?: boolean;
  /** Answer each request after this many milliseconds. */
  delayMs?: number;
  /** Allow pages of any origin to read (CORS, with Range and If-Range allowed and the validators exposed). */
  cors?: boolean;
}

/** One request the server saw. */
export interface SeenRequest {
  method: string;
  range?: string;
  ifRange?: string;
  headers: IncomingMessage["headers"];
}

/** A running server. */
export interface TestHttpServer {
  readonly url: string;
  readonly behaviour: ServerBehaviour;
  readonly requests: SeenRequest[];
  /** Most requests that were being answered at once. */
  readonly maxInFlight: number;
  /** Replaces the file (a new ETag and Last-Modified). */
  setFile(bytes: Uint8Array): void;
  close(): Promise<void>;
}

const RANGE = /^bytes=(\d+)-(\d*)$/;

/** Serves `bytes` at every path; `files` adds more by path (`/base.qcow2`). */
export async function startHttpServer(bytes: Uint8Array, files: Record<string, Uint8Array> = {}): Promise<TestHttpServer> {
  let version = 1;
  let main = bytes;
  let modified = new Date(Date.UTC(2026, 0, 1, 0, 0, 0));
  const behaviour: ServerBehaviour = {};
  const requests: SeenRequest[] = [];

  let inFlight = 0;
  let maxInFlight = 0;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let counted = true;
    const done = () => {
      if (counted) inFlight--;
      counted = false;
    };
    res.on("close", done);
    if (behaviour.delayMs) setTimeout(() => answer(req, res), behaviour.delayMs);
    else answer(req, res);
  };

  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const range = req.headers.range;
    const ifRange = req.headers["if-range"] as string | undefined;
    requests.push({ method: req.method ?? "", range, ifRange, headers: req.headers });
    if (behaviour.drop && behaviour.drop > 0) {
      behaviour.drop--;
      req.socket.destroy();
      return;
    }
    if (behaviour.fail503 && behaviour.fail503 > 0) {
      behaviour.fail503--;
      res.writeHead(503, { "content-length": "0" }).end();
      return;
    }
    if (behaviour.cors) {
      res.setHeader("access-control-allow-origin", "*");
      res.setHeader("access-control-expose-headers", "content-range, content-length, etag, last-modified, accept-ranges, content-encoding");
      if (req.method === "OPTIONS") {
        res.writeHead(204, { "access-control-allow-headers": "range, if-range, authorization", "access-control-allow-methods": "GET, HEAD" }).end();
        return;
      }
    }
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const file = files[path] ?? main;
    const etag = `"v${version}-${path}"`;
    const lastModified = modified.toUTCString();
    const headers: Record<string, string> = {};
    if (!behaviour.noValidators) {
      if (!behaviour.noEtag) headers.etag = etag;
      headers["last-modified"] = lastModified;
    }
    if (!behaviour.noRanges) headers["accept-ranges"] = "bytes";
    const send = (status: number, body: Uint8Array, extra: Record<string, string> = {}): void => {
      let payload = body;
      if (behaviour.gzip) {
        payload = gzipSync(body);
        extra["content-encoding"] = "gzip";
      }
      res.writeHead(status, { ...headers, ...extra, "content-length": String(payload.length) });
      res.end(req.method === "HEAD" ? undefined : payload);
    };
    const m = range ? RANGE.exec(range) : null;
    const validatorMatches = ifRange === undefined || ifRange === etag || ifRange === lastModified;
    if (behaviour.noRanges || !m || !validatorMatches) {
      send(200, file);
      return;
    }
    const first = Number(m[1]);
    const last = Math.min(m[2] === "" ? file.length - 1 : Number(m[2]), file.length - 1);
    if (first >= file.length) {
      res.writeHead(416, { ...headers, "content-range": `bytes */${file.length}`, "content-length": "0" }).end();
      return;
    }
    const body = file.subarray(first, last + 1);
    if (behaviour.shortBody) {
      res.writeHead(206, { ...headers, "content-range": `bytes ${first}-${last}/${file.length}` });
      res.end(body.subarray(0, body.length - 1));
      return;
    }
    send(206, body, { "content-range": `bytes ${first}-${last}/${file.length}` });
  };

  const server: Server = createServer(handle);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/image`,
    behaviour,
    requests,
    get maxInFlight() {
      return maxInFlight;
    },
    setFile(next: Uint8Array) {
      main = next;
      version++;
      modified = new Date(modified.getTime() + 60_000);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
