/**
 * VHDX GUIDs: 16 bytes in Microsoft's mixed-endian order (Data1..Data3 little-endian, Data4 as
 * bytes), handled as lowercase text `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` everywhere else.
 * @module
 */
import { formatUuid, randomUuid } from "../../codec/uuid.js";

/** The all-zero GUID: "none" (no log, no linkage). */
export const VHDX_ZERO_GUID = "00000000-0000-0000-0000-000000000000";

/** Text of the GUID stored in `bytes` (16 bytes, mixed-endian). */
export function vhdxGuidText(bytes: Uint8Array): string {
  return formatUuid(bytes, true);
}

/** The 16 stored bytes of GUID text (braces allowed). Throws TypeError on anything else. */
export function vhdxGuidBytes(text: string): Uint8Array {
  const m = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4}-[0-9a-f]{12})\}?$/i.exec(text.trim());
  if (!m) throw new TypeError(`Invalid GUID '${text}'`);
  const hex = (m[1].match(/../g)!.reverse().join("") + m[2].match(/../g)!.reverse().join("") +
    m[3].match(/../g)!.reverse().join("") + m[4].replace("-", ""));
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** A new random GUID as text. */
export function randomVhdxGuid(): string {
  // randomUuid() sets the version bits for RFC byte order; any 16 random bytes are a valid GUID.
  return vhdxGuidText(randomUuid());
}
