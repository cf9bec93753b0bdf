/**
 * Resolves names stored in images (backing files, extents) to Deno files.
 * @module
 */
import { ImageError } from "../../errors.js";
import type { FileOpener, OpenFileRequest } from "../../io/backend.js";
import { denoApi } from "./deno-api.js";
import { DenoFileBackend } from "./file-backend.js";
import { dirnamePath, normalizePath, resolveBeside } from "./paths.js";

/**
 * The real path of `target` when it lies in the real directory of the naming image; throws
 * `ERR_OPEN_DENIED` when a symbolic link leads out of it. A file that does not exist yet
 * (create) is judged by its real parent directory.
 */
async function confined(target: string, req: OpenFileRequest): Promise<string> {
  const deno = denoApi();
  const dir = normalizePath(await deno.realPath(resolveBeside(deno.cwd(), req.relativeTo.name, ".")));
  let real: string;
  try {
    real = normalizePath(await deno.realPath(target));
  } catch (e) {
    if (!(e instanceof Error && e.name === "NotFound")) throw e;
    const slash = Math.max(target.lastIndexOf("/"), target.lastIndexOf("\\"));
    const parent = await deno.realPath(dirnamePath(target)).catch(() => dirnamePath(target));
    real = normalizePath(`${parent}/${target.slice(slash + 1)}`);
  }
  const root = dir.endsWith("/") ? dir : `${dir}/`;
  if (real !== dir && !real.startsWith(root)) {
    throw new ImageError(
      "ERR_OPEN_DENIED",
      `Refusing to open ${req.purpose} file '${req.name}' named by ${req.relativeTo.name}: it resolves to '${real}', ` +
        `outside the image's directory (policy 'same-dir' follows symbolic links)`,
      { file: req.relativeTo.name },
    );
  }
  return real;
}

/**
 * Opens files for images on Deno: relative names are resolved next to the naming image. Only
 * regular files open; under `same-dir` the real path is confined to the image's directory.
 */
export const denoFileOpener: FileOpener = async (req) => {
  let target = resolveBeside(denoApi().cwd(), req.relativeTo.name, req.name);
  if (req.confineToDirectory) target = await confined(target, req);
  return DenoFileBackend.open(target, {
    readOnly: !req.writable && !req.create,
    create: req.create,
    regularOnly: true,
  });
};
