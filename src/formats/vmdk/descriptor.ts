/**
 * The VMDK text descriptor: probing, parsing (header fields, extent lines, disk database) and
 * writing (a new descriptor at create time; a CID change in an existing one, everything else
 * kept byte for byte).
 * @module
 */
import { CorruptImageError, LimitExceededError } from "../../errors.js";
import { VMDK_DESCRIPTOR_SIGNATURE, VMDK_MAX_EXTENTS, VMDK_SECTOR_SIZE } from "./layout.js";

/** One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`. */
export interface VmdkExtentLine {
  /** `RW`, `RDONLY` or `NOACCESS`. */
  readonly access: string;
  /** Size in sectors as the line states it. */
  readonly sectors: number;
  /** `SPARSE`, `FLAT`, `ZERO`, `VMFS`, … as written. */
  readonly type: string;
  /** The extent file (absent for ZERO). */
  readonly fileName?: string;
  /** FLAT: first sector of the extent in its file. */
  readonly offsetSectors: number;
  /** The line as written, for messages. */
  readonly text: string;
}

/** A parsed descriptor. Unknown entries are kept in `fields` / `ddb`. */
export interface VmdkDescriptor {
  /** The descriptor text (up to the first NUL). */
  readonly text: string;
  /** Content id; `undefined` when the descriptor has none. */
  readonly cid?: number;
  /** The parent's content id when this disk was made (0xffffffff = no parent). */
  readonly parentCid?: number;
  readonly createType?: string;
  readonly parentFileNameHint?: string;
  readonly extents: readonly VmdkExtentLine[];
  /** Header entries (`version`, `encoding`, …) by name, unquoted. */
  readonly fields: ReadonlyMap<string, string>;
  /** Disk database entries (`ddb.adapterType`, …) by name, unquoted. */
  readonly ddb: ReadonlyMap<string, string>;
}

const ACCESS = /^(RW|RDONLY|NOACCESS)$/;

/**
 * True when `head` looks like a text descriptor the way QEMU probes one: comment lines and
 * blank lines, then `version=1|2|3` on a line of its own.
 */
export function looksLikeVmdkDescriptor(head: Uint8Array): boolean {
  let p = 0;
  const end = head.length;
  while (p < end) {
    const c = head[p];
    if (c === 0x23 /* # */) {
      while (p < end && head[p] !== 0x0a) p++;
      p++;
      continue;
    }
    if (c === 0x20 || c === 0x0d || c === 0x0a) {
      while (p < end && head[p] === 0x20) p++;
      if (p < end && head[p] === 0x0d) p++;
      if (p >= end || head[p] !== 0x0a) return false;
      p++;
      continue;
    }
    // "version=N" then LF or CRLF.
    const word = "version=";
    if (end - p < word.length + 2) return false;
    for (let i = 0; i < word.length; i++) if (head[p + i] !== word.charCodeAt(i)) return false;
    const v = head[p + word.length];
    if (v < 0x31 || v > 0x33) return false;
    const n = head[p + word.length + 1];
    return n === 0x0a || (n === 0x0d && p + word.length + 2 < end && head[p + word.length + 2] === 0x0a);
  }
  return false;
}

/** True when `head` starts with the descriptor signature line. */
export function startsWithVmdkSignature(head: Uint8Array): boolean {
  const sig = VMDK_DESCRIPTOR_SIGNATURE;
  if (head.length < sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (head[i] !== sig.charCodeAt(i)) return false;
  return true;
}

/** Decodes descriptor bytes as Latin-1 up to the first NUL (paths keep their bytes). */
export function vmdkDescriptorText(bytes: Uint8Array): string {
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  let s = "";
  for (let i = 0; i < end; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 8192)));
  }
  return s;
}

/** Encodes descriptor text as Latin-1 (the inverse of {@link vmdkDescriptorText}). */
export function encodeVmdkDescriptor(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`VMDK descriptor text has a character outside Latin-1 at ${i}`);
    out[i] = c;
  }
  return out;
}

function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

function parseHex32(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*(?:0x)?([0-9a-fA-F]{1,8})/.exec(v);
  return m ? parseInt(m[1], 16) >>> 0 : undefined;
}

function invalidLine(line: string): CorruptImageError {
  return new CorruptImageError(`Cannot open vmdk image: Invalid extent line: ${line}`, {
    format: "vmdk",
    structure: "descriptor",
  });
}

/**
 * Parses one extent line: undefined when the line is not one, `skip` for a valid line of zero
 * sectors (QEMU ignores those).
 */
function parseExtentLine(line: string): VmdkExtentLine | "skip" | undefined {
  const m = /^\s*(\S+)\s+(\S+)\s+(\S+)(.*)$/.exec(line);
  if (!m || !ACCESS.test(m[1]) || !/^\d+$/.test(m[2])) return undefined;
  const [, access, sectorText, type, rest] = m;
  const sectors = Number(sectorText);
  if (!Number.isSafeInteger(sectors * VMDK_SECTOR_SIZE)) throw invalidLine(line);
  const tail = rest.trim();
  if (type === "ZERO") {
    if (tail !== "") throw invalidLine(line);
    return sectors === 0 ? "skip" : { access, sectors, type, offsetSectors: 0, text: line };
  }
  const fm = /^"([^"\r\n]*)"\s*(\S*)\s*$/.exec(tail);
  if (!fm || fm[1] === "") throw invalidLine(line);
  const fileName = fm[1];
  let offsetSectors = 0;
  if (type === "FLAT") {
    // FLAT lines need a start sector; the others take none.
    if (!/^\d+$/.test(fm[2])) throw invalidLine(line);
    offsetSectors = Number(fm[2]);
    if (!Number.isSafeInteger(offsetSectors * VMDK_SECTOR_SIZE)) throw invalidLine(line);
  } else if (fm[2] !== "") {
    throw invalidLine(line);
  }
  return sectors === 0 ? "skip" : { access, sectors, type, fileName, offsetSectors, text: line };
}

/**
 * Parses descriptor text. Extent lines are validated (QEMU's "Invalid extent line" cases);
 * everything else that is not `key = value` is ignored. Throws {@link CorruptImageError} on
 * bad extent lines and {@link LimitExceededError} past {@link VMDK_MAX_EXTENTS} extents.
 */
export function parseVmdkDescriptor(text: string): VmdkDescriptor {
  const fields = new Map<string, string>();
  const ddb = new Map<string, string>();
  const extents: VmdkExtentLine[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const ext = parseExtentLine(line);
    if (ext === "skip") continue;
    if (ext) {
      if (extents.length >= VMDK_MAX_EXTENTS) {
        throw new LimitExceededError(
          `Cannot open vmdk image: the descriptor lists more than ${VMDK_MAX_EXTENTS} extents`,
          { format: "vmdk", structure: "descriptor" },
        );
      }
      extents.push(ext);
      continue;
    }
    const eq = trimmed.indexOf("=");
    if (eq <= 0) continue;
    const key = trimmed.slice(0, eq).trim();
    const value = unquote(trimmed.slice(eq + 1));
    if (key.startsWith("ddb.")) ddb.set(key, value);
    else if (!fields.has(key)) fields.set(key, value);
  }
  return {
    text,
    cid: parseHex32(fields.get("CID")),
    parentCid: parseHex32(fields.get("parentCID")),
    createType: fields.get("createType"),
    parentFileNameHint: fields.get("parentFileNameHint"),
    extents,
    fields,
    ddb,
  };
}

/**
 * The descriptor text with its `CID=` value replaced by `cid` (lowercase hex, as QEMU writes
 * it). Everything else is kept; a descriptor without a CID line gets one after `version=`.
 */
export function replaceVmdkCid(text: string, cid: number): string {
  const hex = (cid >>> 0).toString(16);
  const re = /^([ \t]*CID[ \t]*=[ \t]*)(?:0x)?[0-9a-fA-F]*/m;
  if (re.test(text)) return text.replace(re, `$1${hex}`);
  const v = /^[ \t]*version[ \t]*=.*$/m.exec(text);
  if (!v) return `CID=${hex}\n${text}`;
  const at = v.index + v[0].length;
  return `${text.slice(0, at)}\nCID=${hex}${text.slice(at)}`;
}

/** What a new descriptor says (create). */
export interface VmdkDescriptorSpec {
  cid: number;
  parentCid: number;
  createType: string;
  parentFileNameHint?: string;
  extentLines: string[];
  hwVersion: string;
  cylinders: number;
  heads: number;
  adapterType: string;
  toolsVersion: string;
}

/** The descriptor text of a new disk, with the fields and order QEMU 7.2 writes. */
export function buildVmdkDescriptor(s: VmdkDescriptorSpec): string {
  const lines = [
    VMDK_DESCRIPTOR_SIGNATURE,
    "version=1",
    `CID=${(s.cid >>> 0).toString(16)}`,
    `parentCID=${(s.parentCid >>> 0).toString(16)}`,
    `createType="${s.createType}"`,
  ];
  if (s.parentFileNameHint !== undefined) lines.push(`parentFileNameHint="${s.parentFileNameHint}"`);
  lines.push("", "# Extent description", ...s.extentLines, "", "# The Disk Data Base", "#DDB", "");
  lines.push(
    `ddb.virtualHWVersion = "${s.hwVersion}"`,
    `ddb.geometry.cylinders = "${s.cylinders}"`,
    `ddb.geometry.heads = "${s.heads}"`,
    `ddb.geometry.sectors = "63"`,
    `ddb.adapterType = "${s.adapterType}"`,
    `ddb.toolsVersion = "${s.toolsVersion}"`,
  );
  return lines.join("\n") + "\n";
}

/** A random content id (never 0xffffffff, which means "no parent"). */
export function randomVmdkCid(): number {
  const b = new Uint32Array(1);
  do globalThis.crypto.getRandomValues(b);
  while (b[0] === 0xffffffff);
  return b[0];
}
