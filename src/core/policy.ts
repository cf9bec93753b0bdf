/**
 * Which files an image may make vdisk open (backing files, data files, extents).
 * @module
 */
import { ImageError } from "../errors.js";
import type { OpenFileRequest } from "../io/backend.js";

/**
 * The open policy:
 * - `deny` (the library default): an image that names another file cannot be opened with it;
 * - `same-dir`: relative names without `..` (files beside the image or below it);
 * - `any`: any local file name (what qemu-img does; the CLI's default);
 * - a function that decides per request.
 * Names that look like protocols (`nbd:`, `json:`, `http://`) are refused by every built-in policy.
 */
export type OpenPolicy = "deny" | "same-dir" | "any" | ((request: OpenFileRequest) => boolean);

// Two or more letters before the colon: a one-letter prefix is a Windows drive (C:\\x).
const PROTOCOL = /^[a-z][a-z0-9+.-]+:/i;

/** Throws `ERR_OPEN_DENIED` when `policy` refuses `request`. */
export function enforcePolicy(policy: OpenPolicy, request: OpenFileRequest): void {
  const deny = (why: string): never => {
    throw new ImageError(
      "ERR_OPEN_DENIED",
      `Refusing to open ${request.purpose} file '${request.name}' named by ${request.relativeTo.name}: ${why}`,
      { file: request.relativeTo.name },
    );
  };
  if (request.name.length === 0 || request.name.includes("\0")) deny("the name is empty or has a NUL byte");
  if (typeof policy === "function") {
    if (!policy(request)) deny("the open policy refused it");
    return;
  }
  if (policy === "deny") deny("the open policy denies it (pass a backing policy such as 'same-dir' to allow it)");
  if (PROTOCOL.test(request.name) || request.name.startsWith("json:")) deny("protocol names are not opened");
  if (policy === "same-dir") {
    const parts = request.name.split(/[\\/]/);
    if (/^([\\/]|[a-zA-Z]:)/.test(request.name) || parts.includes("..")) {
      deny("the policy 'same-dir' allows only names relative to the image, without '..'");
    }
  }
}

/**
 * Enforces `policy` on `request` (as {@link enforcePolicy}) and returns the request to hand to
 * the opener: under `same-dir` it asks the opener to confine the real path (symbolic links
 * resolved) to the image's directory, since the name alone cannot show where a link leads.
 */
export function policedRequest(policy: OpenPolicy, request: OpenFileRequest): OpenFileRequest {
  enforcePolicy(policy, request);
  return policy === "same-dir" ? { ...request, confineToDirectory: true } : request;
}
