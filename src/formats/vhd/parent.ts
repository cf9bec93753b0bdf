/**
 * Parent locators of differencing VHDs: reading the names a disk stores for its parent, and
 * building the locators `create -b` writes.
 * @module
 */
import { decodeUtf16, encodeUtf16 } from "../../codec/utf16.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import {
  VHD_PARENT_LOCATOR_COUNT,
  VhdParentLocatorCodec,
  VhdPlatform,
  type VhdDynamicHeader,
  type VhdParentLocator,
} from "./layout.js";

/** Locator data longer than this is not a path (Windows paths stop at 32767 UTF-16 units). */
const MAX_LOCATOR_BYTES = 65536;

/** One decoded parent locator. */
export interface VhdParentName {
  /** `W2ru`, `W2ku`, `MacX` or `name` (the header's parentUnicodeName). */
  readonly source: string;
  readonly path: string;
}

/** The eight locator entries of a dynamic header. */
export function vhdLocatorEntries(header: VhdDynamicHeader): VhdParentLocator[] {
  const out: VhdParentLocator[] = [];
  for (let i = 0; i < VHD_PARENT_LOCATOR_COUNT; i++) {
    // An offset past 2^53 decodes to Infinity: such a locator lies outside any file and is
    // skipped where it is not needed, as qemu ignores locators.
    const at = i * VhdParentLocatorCodec.size;
    out.push(VhdParentLocatorCodec.decode(header.parentLocators, at, { u64Overflow: "infinity" }));
  }
  return out;
}

/**
 * Reads every parent name the header records, best first: the relative Windows path, the Mac
 * URL, the absolute Windows path, then the header's own parent name. Locators whose data lies
 * outside the file are skipped with a line in `problems`; unknown platforms are skipped.
 */
export async function readVhdParentNames(
  file: IoBackend,
  fileSize: number,
  header: VhdDynamicHeader,
  problems: string[] = [],
): Promise<VhdParentName[]> {
  const found: VhdParentName[] = [];
  for (const loc of vhdLocatorEntries(header)) {
    const code = loc.platformCode;
    if (code !== VhdPlatform.relative && code !== VhdPlatform.absolute && code !== VhdPlatform.macUrl) continue;
    const len = loc.platformDataLength;
    if (len === 0) continue;
    if (len > MAX_LOCATOR_BYTES || loc.platformDataOffset + len > fileSize) {
      // Another locator (or the header's own name) may still find the parent.
      const at = Number.isFinite(loc.platformDataOffset) ? `offset ${loc.platformDataOffset}` : "an offset past 2^53";
      problems.push(`parent locator ${code} of ${len} bytes at ${at} lies outside the file`);
      continue;
    }
    const data = await readExact(file, loc.platformDataOffset, len, "parent locator", "vpc");
    let path = code === VhdPlatform.macUrl ? macUrlPath(data) : decodeUtf16(data, true);
    path = path.replace(/\0+$/, "");
    if (path) found.push({ source: code, path });
  }
  const own = decodeUtf16(header.parentUnicodeName, false);
  if (own) found.push({ source: "name", path: own });
  const rank = (s: string) => [VhdPlatform.relative, VhdPlatform.macUrl, VhdPlatform.absolute, "name"].indexOf(s);
  return found.sort((a, b) => rank(a.source) - rank(b.source));
}

function macUrlPath(data: Uint8Array): string {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(data);
  const m = /^file:\/\/(?:localhost)?(\/.*)$/.exec(text);
  if (!m) return text;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1];
  }
}

/**
 * The file name to open for a stored Windows path: backslashes become slashes and a leading
 * `.\` is dropped, so the relative form resolves next to the child on any system.
 */
export function vhdPathToName(path: string): string {
  let p = path.replace(/\\/g, "/");
  while (p.startsWith("./")) p = p.slice(2);
  return p;
}

/** True for `C:\…`, `\\server\…` and `/…`. */
export function isAbsolutePath(p: string): boolean {
  return /^([a-zA-Z]:[\\/]|[\\/])/.test(p);
}

/** A locator to write: platform code and its data, padded to whole sectors on disk. */
export interface VhdLocatorToWrite {
  readonly code: string;
  readonly data: Uint8Array;
}

/**
 * The locators `create -b name` records: `W2ru` with the relative path when `name` is
 * relative, and `W2ku` with the absolute path when one is known (`name` itself, or `name`
 * resolved against the directory of `childPath` when that is absolute).
 */
export function vhdLocatorsFor(name: string, childPath: string): VhdLocatorToWrite[] {
  const out: VhdLocatorToWrite[] = [];
  const win = (p: string) => p.replace(/\//g, "\\");
  let absolute: string | undefined;
  if (isAbsolutePath(name)) {
    absolute = name;
  } else {
    const rel = win(name);
    out.push({ code: VhdPlatform.relative, data: encodeUtf16(rel.startsWith(".\\") || rel.startsWith("..\\") ? rel : `.\\${rel}`, true) });
    if (isAbsolutePath(childPath)) {
      const cut = Math.max(childPath.lastIndexOf("/"), childPath.lastIndexOf("\\"));
      absolute = `${childPath.slice(0, cut + 1)}${name}`;
    }
  }
  if (absolute !== undefined) out.push({ code: VhdPlatform.absolute, data: encodeUtf16(win(absolute), true) });
  return out;
}
