/**
 * Opens files named by an image (backing files, extents) from a set of Blobs the page holds,
 * e.g. every File the user dropped: a browser has no file system to look them up in.
 * @module
 */
import { ImageError } from "../../errors.js";
import type { FileOpener } from "../../io/backend.js";
import { BlobBackend } from "./blob-backend.js";

/** Named Blobs: an iterable of `File`s (a `FileList`, an array) or a name → Blob record. */
export type BlobFiles = Iterable<File> | Readonly<Record<string, Blob>>;

function baseName(name: string): string {
  return name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
}

function toMap(files: BlobFiles): Map<string, Blob> {
  const map = new Map<string, Blob>();
  if (Symbol.iterator in files) {
    for (const f of files as Iterable<File>) map.set(f.name, f);
  } else {
    for (const [k, v] of Object.entries(files)) map.set(k, v);
  }
  return map;
}

/**
 * A {@link FileOpener} that finds a requested name among `files`: first by the exact name the
 * image stores, then by its last path component. The Blobs open read-only, so a request to
 * open one for writing fails with `ERR_READ_ONLY`; an unknown name fails with `ERR_IO`.
 */
export function blobFileOpener(files: BlobFiles): FileOpener {
  const map = toMap(files);
  return async (req) => {
    const key = map.has(req.name) ? req.name : baseName(req.name);
    const blob = map.get(key);
    if (!blob) {
      throw new ImageError(
        "ERR_IO",
        `Could not open ${req.purpose} file '${req.name}' named by ${req.relativeTo.name}: it is not among the given files`,
        { file: req.relativeTo.name },
      );
    }
    if (req.writable) {
      throw new ImageError("ERR_READ_ONLY", `Cannot open ${req.purpose} file '${key}' for writing: a Blob is read-only`, {
        file: key,
      });
    }
    return new BlobBackend(blob, { name: key });
  };
}
