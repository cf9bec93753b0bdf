/**
 * Resolves names stored in images (backing files, extents) to Node files.
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ImageError } from "../../errors.js";
import type { FileOpener, IoBackend, OpenFileRequest } from "../../io/backend.js";
import { NodeFileBackend } from "./file-backend.js";

/** Resolves `name` against the directory of the file `relativeTo` (its `name` is its path). */
export function resolveNextTo(relativeTo: IoBackend, name: string): string {
  return path.resolve(path.dirname(relativeTo.name), name);
}

/** True when the real path `real` is `dir` or lies below it. */
function inside(real: string, dir: string): boolean {
  const rel = path.relative(dir, real);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * The real path of `target` (symbolic links resolved) when it lies in the real directory of
 * the naming image; throws `ERR_OPEN_DENIED` when a link leads out of it. A file that does not
 * exist yet (create) is judged by its real parent directory.
 */
async function confined(target: string, req: OpenFileRequest): Promise<string> {
  const dir = await fs.promises.realpath(path.dirname(path.resolve(req.relativeTo.name)));
  let real: string;
  try {
    real = await fs.promises.realpath(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    const parent = await fs.promises.realpath(path.dirname(target)).catch(() => path.dirname(target));
    real = path.join(parent, path.basename(target));
  }
  if (!inside(real, dir)) {
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
 * Opens files for images on Node: relative names are resolved next to the naming image. Only
 * regular files open (a FIFO would block open(2) forever); under `same-dir` the real path is
 * confined to the image's directory and opened without following a link swapped in since.
 */
export const nodeFileOpener: FileOpener = async (req) => {
  let target = resolveNextTo(req.relativeTo, req.name);
  if (req.confineToDirectory) target = await confined(target, req);
  return NodeFileBackend.open(target, {
    readOnly: !req.writable && !req.create,
    create: req.create,
    regularOnly: true,
    noFollow: !!req.confineToDirectory,
  });
};
