/**
 * Changing the backing file a qcow2 image records (`rebase`): the backing file name after the
 * header extensions and the backing format extension (0xe2792aca).
 * @module
 */
import type { BackingReference } from "../../core/format.js";
import type { IoBackend } from "../../io/backend.js";
import { encodeQcow2HeaderCluster, type Qcow2Header } from "./header.js";
import { QCOW2_EXT_BACKING_FORMAT, QCOW2_MAX_BACKING_NAME, QCOW2_V2_HEADER_LENGTH, qcow2Pad8 } from "./layout.js";

const SECTOR = 512;

/**
 * A copy of `h` naming `ref` as its backing file: the name replaced (or removed), the backing
 * format extension replaced, added after the other extensions, or removed. Every other extension
 * is kept in its place. Throws `RangeError` for a name longer than 1023 bytes.
 */
export function qcow2HeaderWithBacking(h: Qcow2Header, ref: BackingReference | undefined): Qcow2Header {
  const enc = new TextEncoder();
  if (ref && enc.encode(ref.name).length > QCOW2_MAX_BACKING_NAME) {
    throw new RangeError(`Backing file name of ${enc.encode(ref.name).length} bytes exceeds the qcow2 limit of ${QCOW2_MAX_BACKING_NAME}`);
  }
  const format = ref?.format ? enc.encode(ref.format) : undefined;
  const extensions = [];
  let placed = false;
  for (const e of h.extensions) {
    if (e.type !== QCOW2_EXT_BACKING_FORMAT) {
      extensions.push(e);
    } else if (format && !placed) {
      extensions.push({ type: e.type, data: format });
      placed = true;
    }
  }
  if (format && !placed) extensions.push({ type: QCOW2_EXT_BACKING_FORMAT, data: format });
  return {
    ...h,
    extensions,
    backingFile: ref?.name,
    backingFormat: ref?.format || undefined,
  };
}

/**
 * Writes the header area of `h` (header, extensions, backing file name) at offset 0 in one
 * write, whole sectors, and flushes. Updates `h.backingFileOffset`/`backingFileSize`. Throws
 * `RangeError` when the area does not fit the first cluster.
 */
export async function writeQcow2HeaderArea(file: IoBackend, h: Qcow2Header): Promise<void> {
  const cluster = encodeQcow2HeaderCluster(h);
  // Only the bytes in use: the header and what follows it up to the end of the name. For the
  // usual short names this is a single sector, which disks write atomically.
  let end = h.backingFileOffset ? h.backingFileOffset + h.backingFileSize : usedExtensionEnd(h);
  end = Math.min(cluster.length, Math.ceil(end / SECTOR) * SECTOR);
  await file.write(0, cluster.subarray(0, end));
  await file.flush();
}

/** End of the end-of-extensions marker. */
function usedExtensionEnd(h: Qcow2Header): number {
  let pos = h.version === 2 ? QCOW2_V2_HEADER_LENGTH : h.headerLength;
  for (const e of h.extensions) pos += 8 + qcow2Pad8(e.data.length);
  return pos + 8;
}
