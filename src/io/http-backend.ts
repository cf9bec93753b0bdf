/**
 * A file on an HTTP(S) server as a read-only {@link IoBackend}, through `Range` requests.
 *
 * Remote reads are latency-bound, so the backend keeps a bounded LRU cache of fixed-size blocks,
 * reads ahead on sequential runs (the window doubles while a run lasts), merges neighbouring
 * missing blocks into one request, runs a bounded number of requests at once and retries 5xx,
 * 429 and dropped connections with exponential backoff. The first response's validator (a strong
 * `ETag`, else `Last-Modified`) goes out as `If-Range` on every later request and every answer is
 * compared with it: a file that changes while it is read is an error, never a mix of two versions.
 * @module
 */
import { ImageError } from "../errors.js";
import type { IoBackend, IoCapabilities } from "./backend.js";
import { BlockCache } from "./block-cache.js";
import {
  assertIdentityEncoding,
  describe,
  discardBody,
  HttpError,
  parseContentRange,
  parseUnsatisfiedRange,
  readBodyExactly,
  type FetchLike,
  type HttpResponseLike,
} from "./http-fetch.js";

/** Options of {@link HttpBackend.open}. */
export interface HttpBackendOptions {
  /** Extra request headers (an `Authorization`, a cookie, an API key). */
  headers?: Record<string, string>;
  /** The `fetch` to use; default the runtime's global `fetch`. */
  fetch?: FetchLike;
  /** How the size and validators are learnt: a ranged `GET` of the first block (default) or a `HEAD`. */
  probe?: "get" | "head";
  /** Cache unit and smallest request, bytes; a power of two from 4 KiB to 4 MiB. Default 64 KiB. */
  blockSize?: number;
  /** Most bytes kept in the block cache. Default 32 MiB. */
  cacheBytes?: number;
  /** Largest read-ahead window, bytes (clipped to a quarter of the cache). Default 8 MiB. */
  maxReadAhead?: number;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Retries of a failed request (5xx, 429, network error). Default 4. */
  retries?: number;
  /** First retry delay in ms; doubles each time, at most 5 s. Default 200. */
  retryDelayMs?: number;
  /** Aborts every request (and fails later reads) when it fires. */
  signal?: AbortSignal;
  /** Label for messages; default the URL without its query and credentials. */
  name?: string;
}

/** Counters for tests and benchmarks. */
export interface HttpBackendStats {
  /** HTTP requests sent, retries included. */
  requests: number;
  /** Of those, retries. */
  retries: number;
  /** Body bytes received. */
  bytesFetched: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;
/** Largest single request: bounds the memory one response can take. */
const MAX_REQUEST_BYTES = 16 * MIB;
const MAX_RETRY_DELAY_MS = 5000;

/** What every later response must agree with. */
interface Validator {
  readonly size: number;
  readonly etag: string | null;
  readonly lastModified: string | null;
  /** Sent as `If-Range`: a strong ETag, else the Last-Modified date, else nothing. */
  readonly ifRange: string | null;
}

function checkedOption(value: number | undefined, fallback: number, min: number, max: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`HttpBackend: ${what} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** The URL as messages show it: no credentials, no query (signed URLs carry secrets there). */
function displayName(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** A read-only HTTP(S) resource. Open with {@link HttpBackend.open}. */
export class HttpBackend implements IoBackend {
  readonly name: string;
  readonly capabilities: IoCapabilities = { writable: false };
  /** Requests made so far (for measurements). */
  readonly stats: HttpBackendStats = { requests: 0, retries: 0, bytesFetched: 0 };

  /** The URL requested (with its query); names an image stores resolve against it. */
  readonly url: string;
  private readonly fetchFn: FetchLike;
  private readonly headers: Record<string, string>;
  private readonly blockSize: number;
  private readonly cache: BlockCache;
  /** Largest piece one read() serves from the cache at once: a quarter of it, so it never evicts itself. */
  private readonly maxPieceBytes: number;
  private readonly maxReadAheadBlocks: number;
  private readonly concurrency: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly controller = new AbortController();
  private validator!: Validator;
  /** Blocks being fetched: each resolves when its request has stored it (or failed). */
  private readonly inflight = new Map<number, Promise<void>>();
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** End offset of the last read and the current read-ahead window (blocks; 0 = random access). */
  private lastEnd = -1;
  private windowBlocks = 0;
  /** Set once the file is seen to change (or the backend closes): every later read throws it. */
  private failure: Error | undefined;

  private constructor(url: URL, options: HttpBackendOptions) {
    this.url = url.href;
    this.name = options.name ?? displayName(url);
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
    const f = options.fetch ?? globalFetch;
    if (!f) throw new TypeError("HttpBackend: this runtime has no global fetch; pass options.fetch");
    this.fetchFn = options.fetch ?? ((u, init) => globalFetch!.call(globalThis, u, init));
    this.headers = { ...(options.headers ?? {}) };
    // Node and Deno honour this (browsers set it themselves, and compressed answers are refused below).
    if (!Object.keys(this.headers).some((k) => k.toLowerCase() === "accept-encoding")) this.headers["accept-encoding"] = "identity";
    this.blockSize = checkedOption(options.blockSize, 64 * KIB, 4 * KIB, 4 * MIB, "blockSize");
    if ((this.blockSize & (this.blockSize - 1)) !== 0) throw new RangeError(`HttpBackend: blockSize must be a power of two, got ${this.blockSize}`);
    const cacheBytes = checkedOption(options.cacheBytes, 32 * MIB, 4 * this.blockSize, 2 ** 40, "cacheBytes");
    this.cache = new BlockCache(cacheBytes);
    this.maxPieceBytes = Math.max(this.blockSize, Math.floor(cacheBytes / 4 / this.blockSize) * this.blockSize);
    const maxReadAhead = checkedOption(options.maxReadAhead, 8 * MIB, 0, 2 ** 40, "maxReadAhead");
    this.maxReadAheadBlocks = Math.floor(Math.min(maxReadAhead, cacheBytes / 4, MAX_REQUEST_BYTES) / this.blockSize);
    this.concurrency = checkedOption(options.concurrency, 4, 1, 64, "concurrency");
    this.retries = checkedOption(options.retries, 4, 0, 20, "retries");
    this.retryDelayMs = checkedOption(options.retryDelayMs, 200, 0, 60_000, "retryDelayMs");
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) this.controller.abort(signal.reason);
      else signal.addEventListener("abort", () => this.controller.abort(signal.reason), { once: true });
    }
  }

  /**
   * Opens `url`: one request learns the size and the validators (and, with `probe: "get"`,
   * caches the first block). Rejects with an {@link HttpError} when the server does not serve
   * byte ranges, encodes the body, or answers with an error.
   */
  static async open(url: string | URL, options: HttpBackendOptions = {}): Promise<HttpBackend> {
    const parsed = typeof url === "string" ? new URL(url) : url;
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new TypeError(`HttpBackend: only http: and https: URLs can be opened, got '${parsed.protocol}'`);
    }
    const backend = new HttpBackend(parsed, options);
    await (options.probe === "head" ? backend.probeHead() : backend.probeGet());
    return backend;
  }

  /** The file's ETag and Last-Modified as the server first gave them. */
  get validators(): { etag: string | null; lastModified: string | null } {
    return { etag: this.validator.etag, lastModified: this.validator.lastModified };
  }

  private fail(message: string, status?: number, retryable = false, cause?: unknown): HttpError {
    return new HttpError(`Cannot read '${this.name}' over HTTP: ${message}`, { file: this.name, status, retryable, cause });
  }

  private noRanges(): HttpError {
    return this.fail("the server does not support Range requests (it answered 200 with the whole file); vdisk needs byte ranges to read an image in place");
  }

  private statusError(response: HttpResponseLike): HttpError {
    const s = response.status;
    const text = `${s}${response.statusText ? ` ${response.statusText}` : ""}`;
    if (s === 404 || s === 410) return this.fail(`the server answered ${text}: no such file`, s);
    if (s === 401 || s === 403) return this.fail(`the server answered ${text}: pass credentials in options.headers`, s);
    return this.fail(`the server answered ${text}`, s, s >= 500 || s === 429 || s === 408);
  }

  private validatorFrom(response: HttpResponseLike, size: number): Validator {
    const etag = response.headers.get("etag");
    const lastModified = response.headers.get("last-modified");
    const strong = etag !== null && !etag.trim().startsWith("W/") ? etag.trim() : null;
    return { size, etag, lastModified, ifRange: strong ?? lastModified };
  }

  private async probeGet(): Promise<void> {
    const want = this.blockSize;
    await this.withRetries(async () => {
      const response = await this.send("GET", { range: `bytes=0-${want - 1}` });
      assertIdentityEncoding(response, this.name);
      if (response.status === 416) {
        const total = parseUnsatisfiedRange(response.headers.get("content-range"));
        await discardBody(response);
        if (total !== 0) throw this.fail(`the server refused the range of the first ${want} bytes (416)`, 416);
        this.validator = this.validatorFrom(response, 0);
        return;
      }
      if (response.status === 200) {
        await discardBody(response);
        throw this.noRanges();
      }
      if (response.status !== 206) {
        await discardBody(response);
        throw this.statusError(response);
      }
      const range = parseContentRange(response.headers.get("content-range"));
      if (!range || range.total === undefined || range.first !== 0 || range.last !== Math.min(want, range.total) - 1) {
        await discardBody(response);
        throw this.fail(`the answer to 'Range: bytes=0-${want - 1}' has an unusable Content-Range '${response.headers.get("content-range")}'`, 206);
      }
      const block = new Uint8Array(range.last + 1);
      await readBodyExactly(response, block, this.name);
      this.stats.bytesFetched += block.length;
      this.validator = this.validatorFrom(response, range.total);
      this.cache.set(0, block);
    });
  }

  private async probeHead(): Promise<void> {
    await this.withRetries(async () => {
      const response = await this.send("HEAD", {});
      assertIdentityEncoding(response, this.name);
      if (response.status !== 200) throw this.statusError(response);
      const acceptRanges = (response.headers.get("accept-ranges") ?? "").toLowerCase();
      if (!acceptRanges.split(",").some((u) => u.trim() === "bytes")) {
        throw this.fail("the server does not advertise Range support (no 'Accept-Ranges: bytes' in its HEAD answer)");
      }
      const size = Number(response.headers.get("content-length") ?? "x");
      if (!Number.isSafeInteger(size) || size < 0) throw this.fail(`the HEAD answer has no usable Content-Length ('${response.headers.get("content-length")}')`);
      this.validator = this.validatorFrom(response, size);
    });
  }

  private async send(method: "GET" | "HEAD", extra: Record<string, string>): Promise<HttpResponseLike> {
    this.stats.requests++;
    try {
      return await this.fetchFn(this.url, { method, headers: { ...this.headers, ...extra }, signal: this.controller.signal, cache: "no-store" });
    } catch (e) {
      if (this.controller.signal.aborted) throw this.controller.signal.reason;
      throw this.fail(`the request failed (${describe(e)})`, undefined, true, e);
    }
  }

  /** Runs `attempt` until it succeeds or fails with a non-retryable error or too often. */
  private async withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (e) {
        if (!(e instanceof HttpError) || !e.retryable || i >= this.retries || this.controller.signal.aborted) throw e;
        this.stats.retries++;
        await sleep(Math.min(MAX_RETRY_DELAY_MS, this.retryDelayMs * 2 ** i), this.controller.signal);
      }
    }
  }

  private async slot(): Promise<void> {
    if (this.active < this.concurrency) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /** One ranged GET of blocks [first, first + count): validated, then stored block by block. */
  private async fetchRun(first: number, count: number): Promise<void> {
    const start = first * this.blockSize;
    const end = Math.min(this.validator.size, (first + count) * this.blockSize);
    await this.slot();
    try {
      await this.withRetries(async () => {
        const extra: Record<string, string> = { range: `bytes=${start}-${end - 1}` };
        if (this.validator.ifRange !== null) extra["if-range"] = this.validator.ifRange;
        const response = await this.send("GET", extra);
        assertIdentityEncoding(response, this.name);
        if (response.status === 200 || response.status === 412) {
          await discardBody(response);
          throw this.changed(response.status === 200 ? "the server sent the whole file instead of the range asked for, so it no longer matches the validator" : "412 Precondition Failed");
        }
        if (response.status !== 206) {
          await discardBody(response);
          throw this.statusError(response);
        }
        const range = parseContentRange(response.headers.get("content-range"));
        if (range && range.total !== undefined && range.total !== this.validator.size) {
          await discardBody(response);
          throw this.changed(`its length went from ${this.validator.size} to ${range.total} bytes`);
        }
        if (!range || range.first !== start || range.last !== end - 1) {
          await discardBody(response);
          throw this.fail(`asked for bytes ${start}-${end - 1}, the server answered Content-Range '${response.headers.get("content-range")}'`, 206);
        }
        const etag = response.headers.get("etag");
        const lastModified = response.headers.get("last-modified");
        if ((this.validator.etag !== null && etag !== null && etag !== this.validator.etag) ||
          (this.validator.lastModified !== null && lastModified !== null && lastModified !== this.validator.lastModified)) {
          await discardBody(response);
          throw this.changed(`its ${etag !== this.validator.etag ? `ETag went from ${this.validator.etag} to ${etag}` : `Last-Modified went from ${this.validator.lastModified} to ${lastModified}`}`);
        }
        const bytes = new Uint8Array(end - start);
        await readBodyExactly(response, bytes, this.name);
        this.stats.bytesFetched += bytes.length;
        for (let i = 0; i < count && i * this.blockSize < bytes.length; i++) {
          this.cache.set(first + i, bytes.subarray(i * this.blockSize, Math.min(bytes.length, (i + 1) * this.blockSize)));
        }
      });
    } finally {
      this.release();
    }
  }

  private changed(why: string): HttpError {
    const e = this.fail(`the file changed while it was being read (${why}); reopen it to read the new version`);
    this.failure = e;
    return e;
  }

  /** Starts one request for blocks [first, first + count) and records it as in flight. */
  private startRun(first: number, count: number): Promise<void> {
    const p = this.fetchRun(first, count).finally(() => {
      for (let i = 0; i < count; i++) if (this.inflight.get(first + i) === p) this.inflight.delete(first + i);
    });
    for (let i = 0; i < count; i++) this.inflight.set(first + i, p);
    return p;
  }

  private missing(index: number): boolean {
    return !this.cache.has(index) && !this.inflight.has(index);
  }

  /** Requests every missing block in [from, to] as runs of neighbours; returns the requests. */
  private requestMissing(from: number, to: number): Promise<void>[] {
    const started: Promise<void>[] = [];
    const maxRun = Math.max(1, Math.floor(MAX_REQUEST_BYTES / this.blockSize));
    let b = from;
    while (b <= to) {
      if (!this.missing(b)) {
        b++;
        continue;
      }
      let n = 1;
      while (b + n <= to && n < maxRun && this.missing(b + n)) n++;
      started.push(this.startRun(b, n));
      b += n;
    }
    return started;
  }

  /** Grows the read-ahead window on a sequential run, drops it on a jump. */
  private track(offset: number, end: number): void {
    const slack = Math.max(this.windowBlocks, 1) * this.blockSize;
    const sequential = this.lastEnd >= 0 && offset >= this.lastEnd - slack && offset <= this.lastEnd + this.blockSize;
    if (sequential) this.windowBlocks = Math.min(this.maxReadAheadBlocks, Math.max(4, this.windowBlocks * 2));
    else this.windowBlocks = 0;
    this.lastEnd = sequential ? Math.max(this.lastEnd, end) : end;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.check();
    const size = this.validator.size;
    if (offset >= size || into.length === 0) return 0;
    const n = Math.min(into.length, size - offset);
    for (let done = 0; done < n;) {
      const piece = Math.min(n - done, this.maxPieceBytes - ((offset + done) % this.blockSize));
      await this.readPiece(offset + done, into.subarray(done, done + piece));
      done += piece;
    }
    return n;
  }

  /** Reads [offset, offset + into.length), which lies inside the file and fits the cache many times. */
  private async readPiece(offset: number, into: Uint8Array): Promise<void> {
    const n = into.length;
    const bs = this.blockSize;
    const firstBlock = Math.floor(offset / bs);
    const lastBlock = Math.floor((offset + n - 1) / bs);
    const lastFileBlock = Math.floor((this.validator.size - 1) / bs);
    this.track(offset, offset + n);
    // Cached blocks of this read become the most recent, so the blocks fetched next cannot evict them.
    for (let b = firstBlock; b <= lastBlock; b++) this.cache.get(b);

    // Read-ahead: when less than half the window beyond this read is requested, ask for the
    // rest of it — one request of at least half a window, never a trickle of single blocks.
    let aheadTo = lastBlock;
    if (this.windowBlocks > 0) {
      let horizon = lastBlock + 1;
      while (horizon <= lastFileBlock && horizon <= lastBlock + this.windowBlocks && !this.missing(horizon)) horizon++;
      if (horizon - lastBlock - 1 < this.windowBlocks / 2) aheadTo = Math.min(lastFileBlock, lastBlock + this.windowBlocks);
    }
    for (const p of this.requestMissing(firstBlock, aheadTo)) p.catch(() => undefined);

    for (let attempt = 0; ; attempt++) {
      const pending = new Set<Promise<void>>();
      for (let b = firstBlock; b <= lastBlock; b++) {
        const p = this.inflight.get(b);
        if (p) pending.add(p);
      }
      await Promise.all(pending);
      this.check();
      if (this.copyOut(offset, into)) return;
      // A block was evicted before it could be copied (a cache far smaller than the reads):
      // fetch what is missing again, without read-ahead.
      if (attempt >= 3) throw this.fail(`the block cache is too small for reads of ${n} bytes`);
      this.requestMissing(firstBlock, lastBlock);
    }
  }

  /** Copies the cached bytes of [offset, offset + into.length) into `into`; false if one is gone. */
  private copyOut(offset: number, into: Uint8Array): boolean {
    const bs = this.blockSize;
    let done = 0;
    while (done < into.length) {
      const pos = offset + done;
      const block = this.cache.get(Math.floor(pos / bs));
      if (!block) return false;
      const within = pos % bs;
      const take = Math.min(into.length - done, block.length - within);
      if (take <= 0) return false;
      into.set(block.subarray(within, within + take), done);
      done += take;
    }
    return true;
  }

  private check(): void {
    if (this.failure) throw this.failure;
    if (this.controller.signal.aborted) {
      const reason: unknown = this.controller.signal.reason;
      throw reason instanceof Error ? reason : new ImageError("ERR_CLOSED", `${this.name} is closed`);
    }
  }

  private readOnly(action: string): never {
    throw new ImageError("ERR_READ_ONLY", `Cannot ${action} '${this.name}': an HTTP file is read-only`, { file: this.name });
  }

  /** Always rejects with `ERR_READ_ONLY`. */
  async write(_offset: number, _data: Uint8Array): Promise<void> {
    this.check();
    this.readOnly("write to");
  }

  async flush(): Promise<void> {
    this.check();
  }

  async size(): Promise<number> {
    this.check();
    return this.validator.size;
  }

  /** Always rejects with `ERR_READ_ONLY`. */
  async truncate(_size: number): Promise<void> {
    this.check();
    this.readOnly("resize");
  }

  /** Aborts requests in flight and drops the cache; later calls fail with `ERR_CLOSED`. */
  async close(): Promise<void> {
    if (!this.controller.signal.aborted) {
      this.controller.abort(new ImageError("ERR_CLOSED", `${this.name} is closed`));
    }
    this.cache.clear();
  }
}
