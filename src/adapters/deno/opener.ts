/**
 * Resolves names stored in images (backing files, extents) to Deno files.
 * @module
 */
import type { FileOpener } from "../../io/backend.js";
import { denoApi } from "./deno-api.js";
import { DenoFileBackend } from "./file-backend.js";
import { resolveBeside } from "./paths.js";

/** Opens files for images on Deno: relative names are resolved next to the naming image. */
export const denoFileOpener: FileOpener = (req) =>
  DenoFileBackend.open(resolveBeside(denoApi().cwd(), req.relativeTo.name, req.name), {
    readOnly: !req.writable && !req.create,
    create: req.create,
  });
