/**
 * Changing the backing file a QED image records (`rebase`): the name in the header clusters, the
 * backing-file feature bit, and the no-probe bit, which says the backing file is raw (QED stores
 * no other format name).
 * @module
 */
import type { BackingReference } from "../../core/format.js";
import type { IoBackend } from "../../io/backend.js";
import { writeQedHeader } from "./header.js";
import {
  QED_F_BACKING_FILE,
  QED_F_BACKING_FORMAT_NO_PROBE,
  QED_HEADER,
  QED_HEADER_SIZE,
  QED_MAX_BACKING_NAME,
  qedFeatureBits,
  qedFeatureBytes,
  type QedHeader,
} from "./layout.js";

/**
 * Writes `ref` (or no backing file) into the QED image in `file` whose current header is
 * `header` and whose header area is `headerBytes` long; returns the header now on disk. The new
 * name goes where it overlaps neither the header nor the current name when there is room, and
 * is flushed before the 64-byte header points at it; otherwise (no room) header and name are
 * written in one request. Throws `RangeError` for a name that does not fit.
 */
export async function writeQedBacking(
  file: IoBackend,
  header: QedHeader,
  headerBytes: number,
  ref: BackingReference | undefined,
): Promise<QedHeader> {
  let bits = qedFeatureBits(header.features) & ~(QED_F_BACKING_FILE | QED_F_BACKING_FORMAT_NO_PROBE);
  if (!ref) {
    const next = { ...header, features: qedFeatureBytes(bits), backingFilenameOffset: 0, backingFilenameSize: 0 };
    await writeQedHeader(file, next);
    await file.flush();
    return next;
  }
  const name = new TextEncoder().encode(ref.name);
  const room = headerBytes - QED_HEADER_SIZE;
  if (name.length > QED_MAX_BACKING_NAME || name.length > room) {
    throw new RangeError(`Backing file name of ${name.length} bytes does not fit the qed header (at most ${Math.min(room, QED_MAX_BACKING_NAME)})`);
  }
  bits |= QED_F_BACKING_FILE;
  if (ref.format === "raw") bits |= QED_F_BACKING_FORMAT_NO_PROBE;
  const hadName = (qedFeatureBits(header.features) & QED_F_BACKING_FILE) !== 0n;
  const oldStart = hadName ? header.backingFilenameOffset : 0;
  const oldEnd = hadName ? oldStart + header.backingFilenameSize : 0;
  const free = (at: number): boolean => at >= QED_HEADER_SIZE && at + name.length <= headerBytes && (at >= oldEnd || at + name.length <= oldStart);
  const after = Math.ceil(oldEnd / 8) * 8;
  const at = free(QED_HEADER_SIZE) ? QED_HEADER_SIZE : free(after) ? after : -1;
  const next = {
    ...header,
    features: qedFeatureBytes(bits),
    backingFilenameOffset: at >= 0 ? at : QED_HEADER_SIZE,
    backingFilenameSize: name.length,
  };
  if (at >= 0) {
    await file.write(at, name);
    await file.flush();
    await writeQedHeader(file, next);
  } else {
    const area = new Uint8Array(QED_HEADER_SIZE + name.length);
    area.set(QED_HEADER.encode(next), 0);
    area.set(name, QED_HEADER_SIZE);
    await file.write(0, area);
  }
  await file.flush();
  return next;
}
