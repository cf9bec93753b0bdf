/**
 * qemu-io's result lines: the transfer summary and timing line (or `-C`'s one-line form), the
 * `-v` hex dump, and error texts as C's strerror words them.
 * @module
 */
import { isImageError } from "../../errors.js";
import { ioSizeStr, ioTimeStr } from "../number-format.js";

/** The two lines qemu-io prints after a transfer, or the `-C` line. */
export function transferReport(
  verb: string,
  offset: number,
  count: number,
  total: number,
  ops: number,
  seconds: number,
  compact: boolean,
): string[] {
  const t = Math.max(seconds, 1e-9);
  if (compact) {
    const cs = Math.floor((seconds % 1) * 100);
    const s = Math.floor(seconds);
    const two = (n: number): string => String(n).padStart(2, "0");
    const time = `${Math.floor(s / 3600)}:${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}.${two(cs)}`;
    return [`${total},${ops},${time},${(total / t).toFixed(3)},${(ops / t).toFixed(3)}`];
  }
  return [
    `${verb} ${total}/${count} bytes at offset ${offset}`,
    `${ioSizeStr(total)}, ${ops} ops; ${ioTimeStr(seconds)} (${ioSizeStr(total / t)}/sec and ${(ops / t).toFixed(4)} ops/sec)`,
  ];
}

const isAlnum = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);

/** `read -v`'s dump: 16 bytes a line, offset in hex, letters and digits shown, others as `.`. */
export function hexDump(data: Uint8Array, offset: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, Math.min(i + 16, data.length));
    let hex = "";
    let text = "";
    for (const b of row) {
      hex += b.toString(16).padStart(2, "0") + " ";
      text += isAlnum(b) ? String.fromCharCode(b) : ".";
    }
    lines.push(`${(offset + i).toString(16).padStart(8, "0")}:  ${hex} ${text}`);
  }
  return lines;
}

/** What qemu-io prints after "read failed: " and the like: strerror's words for the cause. */
export function errnoText(e: unknown): string {
  if (e instanceof RangeError) return "Input/output error";
  if (isImageError(e)) {
    switch (e.code) {
      case "ERR_READ_ONLY":
        return "Permission denied";
      case "ERR_UNSUPPORTED_FEATURE":
        return "Operation not supported";
      case "ERR_IMAGE_FULL":
        return "No space left on device";
      case "ERR_INVALID_OPTION":
        return "Invalid argument";
      default:
        return "Input/output error";
    }
  }
  return "Input/output error";
}
