/**
 * The slice of WHATWG `fetch` the HTTP backend uses, declared structurally so that the backend
 * stays runtime-neutral (Node ≥ 18, Deno and browsers all provide it), plus the checks every
 * response goes through: status, `Content-Range`, `Content-Encoding`, validators, body length.
 * @module
 */
import { ImageError } from "../errors.js";

/** Headers as `fetch` returns them: only `get` is used. */
export interface HttpHeadersLike {
  get(name: string): string | null;
}

/** A streamed body: chunks until `done`. */
export interface HttpBodyReaderLike {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(reason?: unknown): Promise<void>;
  releaseLock?(): void;
}

/** A `fetch` Response, as far as the backend reads it. */
export interface HttpResponseLike {
  readonly status: number;
  readonly statusText?: string;
  readonly headers: HttpHeadersLike;
  readonly body?: { getReader(): HttpBodyReaderLike; cancel?(reason?: unknown): Promise<void> } | null;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** What the backend passes to `fetch`. */
export interface HttpRequestInit {
  method: "GET" | "HEAD";
  headers: Record<string, string>;
  signal?: AbortSignal;
  cache?: "no-store";
}

/** A `fetch` function: the global one, or one injected for tests, proxies or credentials. */
export type FetchLike = (url: string, init: HttpRequestInit) => Promise<HttpResponseLike>;

/** A failed HTTP exchange: `status` is the HTTP status when the server answered. */
export class HttpError extends ImageError {
  readonly status?: number;
  /** Whether trying again may succeed (a 5xx, a 429, a dropped connection). */
  readonly retryable: boolean;

  constructor(message: string, details: { file: string; status?: number; retryable?: boolean; cause?: unknown }) {
    super("ERR_IO", message, { file: details.file, cause: details.cause });
    this.name = "HttpError";
    this.status = details.status;
    this.retryable = details.retryable ?? false;
  }
}

/** The parsed `Content-Range: bytes first-last/total` of a 206 (or `bytes * /total` of a 416). */
export interface ContentRange {
  readonly first: number;
  readonly last: number;
  /** The whole resource's length, or undefined for `/*`. */
  readonly total?: number;
}

const RANGE = /^bytes\s+(\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)$/i;
const UNSATISFIED = /^bytes\s+\*\/(\d{1,16})$/i;

function safeInt(text: string): number | undefined {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses a 206's `Content-Range`; undefined when absent or malformed. */
export function parseContentRange(value: string | null): ContentRange | undefined {
  const m = value === null ? null : RANGE.exec(value.trim());
  if (!m) return undefined;
  const first = safeInt(m[1]!);
  const last = safeInt(m[2]!);
  const total = m[3] === "*" ? undefined : safeInt(m[3]!);
  if (first === undefined || last === undefined || last < first) return undefined;
  if (m[3] !== "*" && (total === undefined || last >= total)) return undefined;
  return { first, last, total };
}

/** The length a 416's `Content-Range: bytes * /N` states, if any. */
export function parseUnsatisfiedRange(value: string | null): number | undefined {
  const m = value === null ? null : UNSATISFIED.exec(value.trim());
  return m ? safeInt(m[1]!) : undefined;
}

/** Throws when the server encoded the body (gzip, br…): the bytes would not be the file's. */
export function assertIdentityEncoding(response: HttpResponseLike, file: string): void {
  const enc = response.headers.get("content-encoding");
  if (enc !== null && enc.trim() !== "" && enc.trim().toLowerCase() !== "identity") {
    throw new HttpError(
      `Cannot read '${file}' over HTTP: the server sent it with Content-Encoding '${enc.trim()}', which changes ` +
        `the bytes and their offsets; serve the image without compression (Content-Encoding: identity)`,
      { file, status: response.status },
    );
  }
}

/** Cancels a body we will not read (a 200 that would be the whole file, an error page). */
export async function discardBody(response: HttpResponseLike): Promise<void> {
  try {
    await response.body?.cancel?.();
  } catch {
    // Nothing to do: the connection is dropped either way.
  }
}

/**
 * Reads exactly `into.length` bytes of `response`'s body into `into`. The buffer is the caller's,
 * sized by what was asked for, never by a header; a body that runs longer or shorter is an error.
 */
export async function readBodyExactly(response: HttpResponseLike, into: Uint8Array, file: string): Promise<void> {
  const mismatch = (got: string): HttpError =>
    new HttpError(`Cannot read '${file}' over HTTP: asked for ${into.length} bytes, the server sent ${got}`, {
      file,
      status: response.status,
      retryable: true,
    });
  const stream = response.body;
  if (!stream) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length !== into.length) throw mismatch(String(bytes.length));
    into.set(bytes);
    return;
  }
  const reader = stream.getReader();
  let done = 0;
  try {
    for (;;) {
      let chunk: { done: boolean; value?: Uint8Array };
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new HttpError(`Cannot read '${file}' over HTTP: the connection failed mid-body (${describe(e)})`, {
          file,
          retryable: true,
          cause: e,
        });
      }
      if (chunk.done) break;
      const value = chunk.value ?? new Uint8Array(0);
      if (done + value.length > into.length) {
        await reader.cancel().catch(() => undefined);
        throw mismatch("more");
      }
      into.set(value, done);
      done += value.length;
    }
  } finally {
    reader.releaseLock?.();
  }
  if (done !== into.length) throw mismatch(String(done));
}

/** One line for an unknown thrown value. */
export function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error && cause.message ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}
