/**
 * Finding and validating a VHD's footer: at the end of every VHD, and copied to offset 0 of
 * dynamic and differencing disks.
 * @module
 */
import { CorruptImageError, ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { ProbeInput } from "../../core/format.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import {
  VHD_FOOTER_CHECKSUM_OFFSET,
  VHD_FOOTER_COOKIE,
  VHD_FOOTER_SIZE,
  VhdDiskType,
  VhdFooterCodec,
  vhdChecksum,
  type VhdFooter,
} from "./layout.js";

/** A footer as found in a file. */
export interface VhdFooterFound {
  readonly footer: VhdFooter;
  /** True when the footer used is the copy at offset 0 (dynamic and differencing disks). */
  readonly fromStart: boolean;
  /** Problems noticed that do not prevent opening (a bad copy, a missing end footer). */
  readonly problems: string[];
}

function hasCookie(buf: Uint8Array): boolean {
  for (let i = 0; i < 8; i++) if (buf[i] !== VHD_FOOTER_COOKIE.charCodeAt(i)) return false;
  return true;
}

function checksumOk(buf: Uint8Array): boolean {
  const stored = new DataView(buf.buffer, buf.byteOffset, VHD_FOOTER_SIZE).getUint32(VHD_FOOTER_CHECKSUM_OFFSET);
  return stored === vhdChecksum(buf.subarray(0, VHD_FOOTER_SIZE), VHD_FOOTER_CHECKSUM_OFFSET);
}

function decode(buf: Uint8Array): VhdFooter | undefined {
  try {
    return VhdFooterCodec.decode(buf);
  } catch {
    return undefined; // a size field past 2^53: not a usable footer
  }
}

/**
 * The probe score of a VHD: 100 when the file starts with a footer copy (as QEMU probes),
 * 50 when only the last 512 bytes hold a valid fixed-disk footer (QEMU calls those raw).
 */
export function probeVhd(input: ProbeInput): number {
  if (input.head.length >= VHD_FOOTER_SIZE && hasCookie(input.head)) return 100;
  const t = input.tail;
  if (t.length === VHD_FOOTER_SIZE && input.fileSize >= VHD_FOOTER_SIZE && hasCookie(t) && checksumOk(t)) {
    const f = decode(t);
    if (f && f.diskType === VhdDiskType.fixed && f.currentSize <= input.fileSize - VHD_FOOTER_SIZE) return 50;
  }
  return 0;
}

/**
 * Reads the footer the way QEMU does: the copy at offset 0 when it is there (dynamic and
 * differencing disks), else the last 512 bytes, which must then describe a fixed disk. A copy
 * with a bad checksum falls back to the end footer when that one is intact.
 */
export async function readVhdFooter(file: IoBackend, fileSize: number): Promise<VhdFooterFound> {
  if (fileSize < VHD_FOOTER_SIZE) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open vpc image: File too small for a VHD header (${fileSize} bytes)`, {
      format: "vpc",
      structure: "footer",
    });
  }
  const head = await readZeroPadded(file, 0, VHD_FOOTER_SIZE);
  const tail = await readZeroPadded(file, fileSize - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE);
  const problems: string[] = [];
  const tailUsable = hasCookie(tail) && checksumOk(tail) ? decode(tail) : undefined;
  let found: VhdFooter | undefined;
  let fromStart = false;
  if (hasCookie(head)) {
    const f = decode(head);
    if (f && checksumOk(head)) {
      found = f;
      fromStart = true;
    } else if (tailUsable && tailUsable.diskType !== VhdDiskType.fixed) {
      problems.push("the footer copy at offset 0 has an incorrect checksum; using the footer at the end");
      found = tailUsable;
    } else {
      throw new CorruptImageError("Cannot open vpc image: Incorrect header checksum in the footer copy at offset 0", {
        format: "vpc",
        structure: "footer",
        fileOffset: 0,
      });
    }
    if (found.diskType === VhdDiskType.fixed && tailUsable?.diskType === VhdDiskType.fixed) {
      // A fixed disk whose guest data happens to start with a VHD footer.
      found = tailUsable;
      fromStart = false;
    }
  } else if (hasCookie(tail)) {
    if (!tailUsable) {
      throw new CorruptImageError("Cannot open vpc image: Incorrect header checksum in the footer at the end of the file", {
        format: "vpc",
        structure: "footer",
        fileOffset: fileSize - VHD_FOOTER_SIZE,
      });
    }
    found = tailUsable;
    if (found.diskType !== VhdDiskType.fixed) {
      problems.push("the footer copy at offset 0 is missing; using the footer at the end");
    }
  } else {
    throw new ImageError("ERR_NOT_AN_IMAGE", "Cannot open vpc image: invalid VPC image (no 'conectix' footer at the start or the end of the file)", {
      format: "vpc",
      structure: "footer",
    });
  }
  const t = found.diskType;
  if (t !== VhdDiskType.fixed && t !== VhdDiskType.dynamic && t !== VhdDiskType.differencing) {
    throw new UnsupportedFeatureError(`Cannot open vpc image: unknown disk type ${t} (expected 2, 3 or 4)`, {
      format: "vpc",
      structure: "footer",
    });
  }
  if (fromStart && t !== VhdDiskType.fixed) {
    const endOk = tailUsable && tailUsable.diskType === t;
    if (!endOk) problems.push("the footer at the end of the file is missing or damaged");
  }
  return { footer: found, fromStart, problems };
}
