/**
 * UTF-16 text in fixed or sized byte fields (VHD parent names and locators, VHDX metadata).
 * @module
 */

/**
 * Decodes UTF-16 code units from `bytes` up to the first NUL unit (or the end; a trailing odd
 * byte is ignored). Unpaired surrogates decode as U+FFFD.
 */
export function decodeUtf16(bytes: Uint8Array, littleEndian: boolean): string {
  const units: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const u = littleEndian ? bytes[i] | (bytes[i + 1] << 8) : (bytes[i] << 8) | bytes[i + 1];
    if (u === 0) break;
    units.push(u);
  }
  // Replace unpaired surrogates so the result is well-formed text.
  for (let i = 0; i < units.length; i++) {
    const u = units[i];
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < units.length && units[i + 1] >= 0xdc00 && units[i + 1] <= 0xdfff) {
      i++;
    } else if (u >= 0xd800 && u <= 0xdfff) {
      units[i] = 0xfffd;
    }
  }
  let s = "";
  for (let i = 0; i < units.length; i += 4096) s += String.fromCharCode(...units.slice(i, i + 4096));
  return s;
}

/** Encodes `text` as UTF-16 without a terminator or byte-order mark. */
export function encodeUtf16(text: string, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const u = text.charCodeAt(i);
    out[2 * i + (littleEndian ? 0 : 1)] = u & 0xff;
    out[2 * i + (littleEndian ? 1 : 0)] = u >>> 8;
  }
  return out;
}
