/**
 * GOW ("Grow On Write") on-disk layout, versions 1 and 2.
 *
 * Spec: the project's specification `../shared/specs/gow.md` ("GOW disk images — the format as
 * this project implements it"), written from the v1 driver of the March 2012 QEMU patch series
 * (Virtual Bridges, never merged) and the surviving start of the format document. Every fact
 * below carries the spec's tag: [seed] read in the v1 driver, [doc] read in the format document,
 * [derived] arithmetic on those, [decision] chosen by this project because no source says.
 * `vdisk info` shows the [decision] entries (see {@link GOW_PROVENANCE}).
 *
 * All integers are little-endian on disk.
 *
 * ```
 *  file offset 0
 *  +---------------------------------+
 *  | magic      u32                  |  "GOW1" / "GOW2" [decision]
 *  | size       u32  (blocks)        |  disk bytes = size x 65536
 *  | allocated  u32  (slots in use)  |
 *  | map[MAXBLOCKS]  u32 each        |  slot index of each logical block, or FREE
 *  +---------------------------------+  header bytes = 12 + 4 x MAXBLOCKS
 *  | (v2: zero pad to 512)           |  [decision on the rounding]
 *  +---------------------------------+  base = data area start
 *  | slot 0 | slot 1 | ...           |  64 KiB each, in first-write order, never moved or freed
 *  +---------------------------------+
 * ```
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** Bytes of one block and of one slot [doc]. */
export const GOW_BLOCK_SIZE = 65536;

/** The map marker of a free block [decision: slot 0 is valid, so the marker cannot be 0]. */
export const GOW_FREE = 0xffffffff;

/** The fixed header fields before the map [seed]. */
export const GowHeaderCodec = defineStruct("GOW header", "le", [
  /** Version magic (see {@link GOW_VERSIONS}). */
  { name: "magic", kind: "u32", at: 0 },
  /** Logical disk size in blocks, 1..MAXBLOCKS. */
  { name: "size", kind: "u32", at: 4 },
  /** Slots in use; the next free slot index. */
  { name: "allocated", kind: "u32", at: 8 },
]);

/** Decoded fixed header fields. */
export type GowHeader = ReturnType<typeof GowHeaderCodec.decode>;

/** File offset of the map (entry `i` lives at `GOW_MAP_OFFSET + 4 * i`). */
export const GOW_MAP_OFFSET = GowHeaderCodec.size;

/** Geometry of one GOW version. */
export interface GowVersionLayout {
  readonly version: 1 | 2;
  /** Format name (`-f`). */
  readonly name: "gow1" | "gow2";
  /** The magic this project writes and probes for [decision]. */
  readonly magic: number;
  /** Map entries: the largest disk in blocks [seed for v1, doc for v2]. */
  readonly maxBlocks: number;
  /** 12 + 4 x maxBlocks [derived]. */
  readonly headerBytes: number;
  /** Start of slot 0 [derived; v2 rounding is a decision]. */
  readonly dataBase: number;
}

function version(v: 1 | 2, maxBlocks: number, align: number): GowVersionLayout {
  const headerBytes = GOW_MAP_OFFSET + 4 * maxBlocks;
  return {
    version: v,
    name: v === 1 ? "gow1" : "gow2",
    // "GOW" followed by the version digit, read as a little-endian u32.
    magic: (0x574f47 | ((0x30 + v) << 24)) >>> 0,
    maxBlocks,
    headerBytes,
    dataBase: Math.ceil(headerBytes / align) * align,
  };
}

/** v1: 2^20 blocks (64 GiB), data right after the header; v2: 2^22 blocks (256 GiB), 512-aligned. */
export const GOW_VERSIONS: Readonly<Record<1 | 2, GowVersionLayout>> = {
  1: version(1, 1 << 20, 1),
  2: version(2, 1 << 22, 512),
};

/**
 * The version digit of a magic of this project's family ("GOW" followed by an ASCII digit),
 * or undefined for any other magic. Real Virtual Bridges images carry an unknown magic.
 */
export function gowMagicVersion(magic: number): number | undefined {
  if ((magic & 0xffffff) !== 0x574f47) return undefined;
  const digit = magic >>> 24;
  return digit >= 0x30 && digit <= 0x39 ? digit - 0x30 : undefined;
}

/** The magic as hex and as printable text, for messages: `0x31574f47 ("GOW1")`. */
export function gowMagicText(magic: number): string {
  let text = "";
  for (let i = 0; i < 4; i++) {
    const c = (magic >>> (8 * i)) & 0xff;
    text += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".";
  }
  return `0x${(magic >>> 0).toString(16).padStart(8, "0")} ("${text}")`;
}

/**
 * Where each value comes from, shown by `vdisk info` so the reconstruction stays honest.
 * Keys name the value; texts start with the spec's tag.
 */
export const GOW_PROVENANCE: Readonly<Record<string, string>> = {
  "block-size": "[doc] 64 KiB blocks",
  "map-layout": "[seed] magic, size in blocks, allocated, then MAXBLOCKS u32 map entries, little-endian",
  "max-blocks": "[seed] v1 2^20; [doc] v2 2^22",
  magic: "[decision] no source gives the magic; this project writes 'GOW1' / 'GOW2'",
  "free-marker": "[decision] 0xFFFFFFFF, since slot 0 is a valid slot",
  "data-offset": "[derived] v1: right after the header; [decision] v2: rounded up to 512",
  "create-rounding": "[decision] the size is rounded up to whole blocks (the seed rounds down)",
  "crash-order": "[decision] data, flush, then the allocated counter, then the map entries",
  resize: "[decision] grows up to MAXBLOCKS; shrinking frees map entries past the end and never lowers allocated",
  check: "[decision] entries below allocated, no slot used twice, slots below allocated in the file; an orphan tail is a leak",
  "v2-create-padding": "[decision] create writes zeros from the end of the v2 header to the data area",
  "foreign-magic": "[decision] an explicit -f gow1/gow2 accepts an unknown magic whose header passes the structural checks",
};
