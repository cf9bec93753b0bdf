/**
 * Images are read at random offsets, so a pipe cannot be opened as one: refused with qemu-img's
 * message instead of being read as an empty raw disk.
 * @module
 */
import { statSync } from "node:fs";

/**
 * Throws qemu-img's error for an image path that is a pipe or socket (`info /dev/stdin` on a
 * pipe): vdisk reads images at random offsets, and a pipe read as raw would look empty.
 */
export function rejectPipeSource(path: string): void {
  let pipe: boolean;
  try {
    const st = statSync(path);
    pipe = st.isFIFO() || st.isSocket();
  } catch {
    // `-` names standard input only when no file of that name exists (qemu-img opens the file).
    if (path === "-") {
      throw new Error("standard input cannot be read as an image: vdisk reads images at random offsets (save it to a file first)");
    }
    return;
  }
  if (pipe) throw new Error(`'file' driver requires '${path}' to be a regular file`);
}
