/**
 * Files named by an image on an HTTP server (a backing file, an extent): resolved against the
 * naming image's URL and opened read-only on the same terms. Used only for what the
 * {@link OpenPolicy} allowed, and never for protocol names, which every built-in policy refuses.
 * @module
 */
import { ImageError } from "../errors.js";
import type { FileOpener, IoBackend, OpenFileRequest } from "./backend.js";
import { HttpBackend, type HttpBackendOptions } from "./http-backend.js";

/** Whether `source` is a string holding an absolute `http:` or `https:` URL. */
export function isHttpUrl(source: unknown): source is string {
  return typeof source === "string" && /^https?:\/\//i.test(source);
}

/**
 * An opener for names stored in images that live on HTTP servers; `fallback` opens the names
 * that images elsewhere store (local files). Names resolve like links: `base.qcow2` next to the
 * image, `/x/base.qcow2` on the same server.
 */
export function httpAwareOpener(options: HttpBackendOptions, fallback?: FileOpener): FileOpener {
  return (request: OpenFileRequest): Promise<IoBackend> => {
    if (!(request.relativeTo instanceof HttpBackend)) {
      if (fallback) return fallback(request);
      return Promise.reject(new ImageError("ERR_OPEN_DENIED", `No way to open '${request.name}' named by ${request.relativeTo.name}`));
    }
    if (request.writable || request.create) {
      return Promise.reject(
        new ImageError("ERR_READ_ONLY", `Cannot open ${request.purpose} file '${request.name}' for writing: it is on an HTTP server`, {
          file: request.relativeTo.name,
        }),
      );
    }
    const url = new URL(request.name, request.relativeTo.url);
    return HttpBackend.open(url, { ...options, name: undefined });
  };
}
