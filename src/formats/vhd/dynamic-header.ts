/**
 * Reading and validating the dynamic header and the BAT of dynamic and differencing VHDs.
 * Every size read from the file is bounded before it sizes an allocation.
 * @module
 */
import { CorruptImageError, LimitExceededError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact, readZeroPadded } from "../../io/helpers.js";
import {
  VHD_BAT_UNALLOCATED,
  VHD_DYNAMIC_CHECKSUM_OFFSET,
  VHD_DYNAMIC_COOKIE,
  VHD_DYNAMIC_HEADER_SIZE,
  VHD_FOOTER_SIZE,
  VHD_MAX_TABLE_ENTRIES,
  VhdDynamicHeaderCodec,
  vhdBitmapSize,
  vhdChecksum,
  type VhdDynamicHeader,
  type VhdFooter,
} from "./layout.js";
import { vhdLocatorEntries } from "./parent.js";

/** What the block map of a dynamic or differencing disk is built from. */
export interface VhdDynamicState {
  readonly header: VhdDynamicHeader;
  /** File offset of the dynamic header. */
  readonly headerOffset: number;
  readonly blockSize: number;
  /** Bytes of sector bitmap before each block's data. */
  readonly bitmapSize: number;
  /** File offset of the BAT. */
  readonly batOffset: number;
  /** The BAT, decoded (block sector numbers or {@link VHD_BAT_UNALLOCATED}). */
  readonly bat: Uint32Array;
  /** The first byte after all metadata and blocks: where the next block goes. */
  readonly freeOffset: number;
  /** Problems that do not prevent opening. */
  readonly problems: string[];
  /**
   * Blocks whose BAT entry points (partly) past the end of the file: a volatile disk cache kept
   * the entry and lost the writes that extend the file. They read as unallocated (the BAT
   * entry is cleared in memory) and `check -r all` clears them on disk.
   */
  readonly pastEof: number[];
}

function corrupt(message: string, structure: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open vpc image: ${message}`, { format: "vpc", structure, fileOffset });
}

/**
 * Reads the dynamic header at `footer.dataOffset` and the BAT, checking them against the file
 * size and the virtual size `size` (bytes) with QEMU's messages where QEMU has one.
 */
export async function readVhdDynamic(
  file: IoBackend,
  fileSize: number,
  footer: VhdFooter,
  size: number,
): Promise<VhdDynamicState> {
  const problems: string[] = [];
  const hOff = footer.dataOffset;
  if (hOff < VHD_FOOTER_SIZE || hOff >= fileSize) {
    throw corrupt(`dynamic header offset ${hOff} lies outside the file (${fileSize} bytes)`, "footer", 16);
  }
  // Zero-padded like QEMU's read, so a truncated file reports the field QEMU reports.
  const raw = await readZeroPadded(file, hOff, VHD_DYNAMIC_HEADER_SIZE);
  let header: VhdDynamicHeader;
  try {
    header = VhdDynamicHeaderCodec.decode(raw);
  } catch (e) {
    throw corrupt(`dynamic header: ${(e as Error).message}`, "dynamic header", hOff);
  }
  if (header.cookie !== VHD_DYNAMIC_COOKIE) {
    throw corrupt(`Invalid header magic '${printable(header.cookie)}' in the dynamic header (expected 'cxsparse')`, "dynamic header", hOff);
  }
  if (vhdChecksum(raw, VHD_DYNAMIC_CHECKSUM_OFFSET) !== header.checksum) {
    problems.push("the dynamic header has an incorrect checksum");
  }
  const bs = header.blockSize;
  if (bs < 512 || (bs & (bs - 1)) !== 0) {
    throw corrupt(`Invalid block size ${bs} (must be a power of two of at least 512)`, "dynamic header", hOff + 32);
  }
  const bitmapSize = vhdBitmapSize(bs);
  const mte = header.maxTableEntries;
  if (size / bs > 0xffffffff) throw corrupt(`Too many blocks for a virtual size of ${size} bytes`, "dynamic header", hOff + 28);
  if (mte * bs < size) {
    throw corrupt(
      `Page table too small: ${mte} entries of ${formatBytes(bs)} cover less than the virtual size of ${size} bytes`,
      "dynamic header",
      hOff + 28,
    );
  }
  if (mte > VHD_MAX_TABLE_ENTRIES) {
    throw new LimitExceededError(`Cannot open vpc image: Max Table Entries too large (${mte})`, {
      format: "vpc",
      structure: "dynamic header",
      fileOffset: hOff + 28,
    });
  }
  if (hOff + VHD_DYNAMIC_HEADER_SIZE > fileSize) {
    throw corrupt(`dynamic header at offset ${hOff} extends past the end of the file (${fileSize} bytes)`, "dynamic header", hOff);
  }
  const batOffset = header.tableOffset;
  const batBytes = mte * 4;
  if (batOffset < VHD_FOOTER_SIZE || batOffset + batBytes > fileSize) {
    throw corrupt(
      `BAT of ${formatBytes(batBytes)} at offset ${batOffset} lies outside the file (${fileSize} bytes)`,
      "BAT",
      batOffset,
    );
  }
  if (batOffset < hOff + VHD_DYNAMIC_HEADER_SIZE && batOffset + batBytes > hOff) {
    throw corrupt(`BAT at offset ${batOffset} overlaps the dynamic header at ${hOff}`, "BAT", batOffset);
  }
  const batRaw = await readExact(file, batOffset, batBytes, "BAT", "vpc");
  const bat = new Uint32Array(mte);
  const dv = new DataView(batRaw.buffer, batRaw.byteOffset, batRaw.byteLength);
  for (let i = 0; i < mte; i++) bat[i] = dv.getUint32(i * 4);

  // Metadata the blocks must not overlap, and the first free byte after everything.
  const meta: Array<[number, number, string]> = [
    [0, VHD_FOOTER_SIZE, "the footer copy"],
    [hOff, hOff + VHD_DYNAMIC_HEADER_SIZE, "the dynamic header"],
    [batOffset, batOffset + batBytes, "the BAT"],
  ];
  let freeOffset = Math.max(hOff + VHD_DYNAMIC_HEADER_SIZE, roundUp512(batOffset + batBytes));
  for (const loc of vhdLocatorEntries(header)) {
    if (loc.platformCode === "\0\0\0\0" || loc.platformDataLength === 0) continue;
    const end = loc.platformDataOffset + loc.platformDataLength;
    if (end <= fileSize) {
      meta.push([loc.platformDataOffset, end, `parent locator ${printable(loc.platformCode)}`]);
      freeOffset = Math.max(freeOffset, roundUp512(end));
    }
  }
  const blockSpan = bitmapSize + bs;
  const pastEof: number[] = [];
  for (let i = 0; i < mte; i++) {
    const e = bat[i];
    if (e === VHD_BAT_UNALLOCATED) continue;
    const start = e * 512;
    const end = start + blockSpan;
    if (end > fileSize) {
      // Checked before the overlap test: such an entry is what a crash leaves, not damage.
      problems.push(`block ${i} at offset ${start} extends past the end of the file (${fileSize} bytes)`);
      pastEof.push(i);
      bat[i] = VHD_BAT_UNALLOCATED;
      continue;
    }
    for (const [ms, me, what] of meta) {
      if (start < me && end > ms) throw corrupt(`block ${i} at offset ${start} overlaps ${what}`, "BAT", batOffset + i * 4);
    }
    if (end > freeOffset) freeOffset = end;
  }
  return { header, headerOffset: hOff, blockSize: bs, bitmapSize, batOffset, bat, freeOffset, problems, pastEof };
}

function roundUp512(n: number): number {
  return Math.ceil(n / 512) * 512;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "?");
}
