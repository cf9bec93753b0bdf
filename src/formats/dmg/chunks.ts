/**
 * The chunk table of a dmg image: the property list's `mish` tables decoded, validated against
 * qemu's limits and merged into one list sorted by guest sector.
 * @module
 */
import { CorruptImageError, UnsupportedFeatureError } from "../../errors.js";
import {
  DMG_MAX_CHUNK_BYTES,
  DMG_MISH_MAGIC,
  DMG_SECTOR,
  DmgChunkCodec,
  DmgChunkType,
  DmgMishCodec,
} from "./layout.js";

/** One chunk: guest bytes `[start, end)` and where its data is. */
export interface DmgChunk {
  readonly type: number;
  /** Guest byte range. */
  readonly start: number;
  readonly end: number;
  /** File offset and length of the stored (possibly compressed) data. */
  readonly fileOffset: number;
  readonly fileLength: number;
}

const corrupt = (message: string): CorruptImageError =>
  new CorruptImageError(`Cannot open dmg image: ${message}`, { format: "dmg", structure: "mish table" });

/** Decodes base64 text (whitespace allowed, as plists wrap it). */
function base64(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  let bin: string;
  try {
    bin = atob(clean);
  } catch {
    throw corrupt("a <data> element of the property list is not base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The `mish` tables of the property list's `<data>` elements (others are skipped, as qemu). */
export function mishTablesOfPlist(xml: string): Uint8Array[] {
  const tables: Uint8Array[] = [];
  for (const m of xml.matchAll(/<data>([^<]*)<\/data>/g)) {
    const bytes = base64(m[1]);
    if (bytes.length >= 4 && new DataView(bytes.buffer).getUint32(0) === DMG_MISH_MAGIC) tables.push(bytes);
  }
  return tables;
}

/** Types that hold guest data somewhere in the file. */
const STORED = new Set<number>([DmgChunkType.raw, DmgChunkType.zlib, DmgChunkType.bzip2, DmgChunkType.lzfse, DmgChunkType.adc]);

/**
 * Every chunk of `tables`, sorted by guest offset, checked: sector ranges within the disk and
 * non-overlapping, stored ranges inside the data fork, sizes within qemu's 64 MiB per chunk.
 * `dataFork` is the fork's file range.
 */
export function dmgChunks(tables: readonly Uint8Array[], dataFork: { offset: number; length: number }): DmgChunk[] {
  const chunks: DmgChunk[] = [];
  for (const t of tables) {
    if (t.length < DmgMishCodec.size) throw corrupt(`a mish table of ${t.length} bytes is shorter than its header`);
    const mish = DmgMishCodec.decode(t, 0, { u64Overflow: "infinity" });
    const count = mish.chunkCount;
    if (DmgMishCodec.size + count * DmgChunkCodec.size > t.length) {
      throw corrupt(`a mish table lists ${count} chunks but holds ${t.length} bytes`);
    }
    for (let i = 0; i < count; i++) {
      const c = DmgChunkCodec.decode(t, DmgMishCodec.size + i * DmgChunkCodec.size, { u64Overflow: "infinity" });
      if (c.type === DmgChunkType.comment || c.type === DmgChunkType.end) continue;
      const known = c.type === DmgChunkType.zero || c.type === DmgChunkType.ignore || STORED.has(c.type);
      if (!known) throw corrupt(`chunk ${i} has the unknown type 0x${c.type.toString(16)}`);
      if (c.sectorCount === 0) continue;
      const bytes = c.sectorCount * DMG_SECTOR;
      if (bytes > DMG_MAX_CHUNK_BYTES) {
        throw corrupt(`sector count ${c.sectorCount} for chunk ${i} is larger than max (${DMG_MAX_CHUNK_BYTES / DMG_SECTOR})`);
      }
      const start = (mish.firstSector + c.sector) * DMG_SECTOR;
      if (!Number.isSafeInteger(start + bytes)) throw corrupt(`chunk ${i} starts at an impossible sector`);
      let fileOffset = 0;
      let fileLength = 0;
      if (STORED.has(c.type)) {
        if (c.compressedLength > DMG_MAX_CHUNK_BYTES) {
          throw corrupt(`length ${c.compressedLength} for chunk ${i} is larger than max (${DMG_MAX_CHUNK_BYTES})`);
        }
        if (c.type === DmgChunkType.raw && c.compressedLength !== bytes) {
          throw corrupt(`raw chunk ${i} stores ${c.compressedLength} bytes for ${bytes} guest bytes`);
        }
        fileOffset = dataFork.offset + c.compressedOffset;
        fileLength = c.compressedLength;
        if (!Number.isSafeInteger(fileOffset + fileLength) || c.compressedOffset + fileLength > dataFork.length) {
          throw corrupt(`chunk ${i} points past the data fork`);
        }
      }
      chunks.push({ type: c.type, start, end: start + bytes, fileOffset, fileLength });
    }
  }
  chunks.sort((a, b) => a.start - b.start);
  for (let i = 1; i < chunks.length; i++) {
    if (chunks[i].start < chunks[i - 1].end) throw corrupt(`chunks overlap at guest offset ${chunks[i].start}`);
  }
  return chunks;
}

/** Refuses chunk types vdisk cannot decode, naming them (before any read). */
export function unsupportedChunkType(type: number): UnsupportedFeatureError {
  const name = type === DmgChunkType.bzip2 ? "bzip2" : type === DmgChunkType.lzfse ? "lzfse" : "ADC";
  return new UnsupportedFeatureError(`Cannot read dmg image: ${name}-compressed chunks are not supported by vdisk`, {
    format: "dmg",
    structure: "chunk",
  });
}
