/**
 * Resolves names stored in images (backing files, extents) to Node files.
 * @module
 */
import * as path from "node:path";
import type { FileOpener, IoBackend } from "../../io/backend.js";
import { NodeFileBackend } from "./file-backend.js";

/** Resolves `name` against the directory of the file `relativeTo` (its `name` is its path). */
export function resolveNextTo(relativeTo: IoBackend, name: string): string {
  return path.resolve(path.dirname(relativeTo.name), name);
}

/** Opens files for images on Node: relative names are resolved next to the naming image. */
export const nodeFileOpener: FileOpener = (req) =>
  NodeFileBackend.open(resolveNextTo(req.relativeTo, req.name), { readOnly: !req.writable && !req.create, create: req.create });
