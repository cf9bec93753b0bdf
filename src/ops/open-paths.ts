/**
 * `openImage`/`createImage` for runtimes with files (Node, Deno): a path opens through the
 * runtime's file backend, an `http(s)://` string or a `URL` through an {@link HttpBackend}
 * (read-only), a backend as it is; names stored in images open next to them (under the policy),
 * on the same server for remote images.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { FileOpener, IoBackend } from "../io/backend.js";
import { HttpBackend, type HttpBackendOptions } from "../io/http-backend.js";
import { httpAwareOpener, isHttpUrl } from "../io/http-opener.js";
import { createImageOn, openImageOn, type CreateImageOptions, type OpenImageOptions } from "./open.js";

/** A path, an `http(s)://` URL (a string or a `URL`), or a backend. */
export type ImageSource = string | URL | IoBackend;

/** Options of `openImage` in a runtime with files. */
export interface RuntimeOpenImageOptions extends OpenImageOptions {
  /** How URLs are read (headers for credentials, `fetch`, cache and read-ahead sizes). */
  http?: HttpBackendOptions;
}

/** How a runtime opens its files. */
export interface PathRuntime {
  openPath(path: string, options: { readOnly?: boolean; create?: boolean }): Promise<IoBackend>;
  opener: FileOpener;
}

/** The `openImage` of a runtime with files. */
export function pathOpenImage(runtime: PathRuntime) {
  return async (source: ImageSource, options: RuntimeOpenImageOptions = {}): Promise<BlockDevice> => {
    const { http, ...rest } = options;
    const openFile = httpAwareOpener(http ?? {}, runtime.opener);
    if (source instanceof URL || isHttpUrl(source)) {
      const io = await HttpBackend.open(source, http);
      return openImageOn(io, { openFile, ...rest }).catch(async (e: unknown) => {
        await io.close();
        throw e;
      });
    }
    const io = typeof source === "string" ? await runtime.openPath(source, { readOnly: options.readOnly }) : source;
    return openImageOn(io, { openFile, ...rest });
  };
}

/** The `createImage` of a runtime with files: a path is created (or truncated). */
export function pathCreateImage(runtime: PathRuntime) {
  return async (target: string | IoBackend, options: CreateImageOptions): Promise<BlockDevice> => {
    const io = typeof target === "string" ? await runtime.openPath(target, { create: true }) : target;
    return createImageOn(io, { openFile: runtime.opener, ...options });
  };
}
