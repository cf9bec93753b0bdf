/**
 * The dmg driver (read-only): probing (a `.dmg` name, as qemu, or a `koly` trailer), the trailer
 * and property list, and the open instance.
 * @module
 */
import type { FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { CorruptImageError, UnsupportedFeatureError } from "../../errors.js";
import { readExact } from "../../io/helpers.js";
import { dmgChunks, mishTablesOfPlist } from "./chunks.js";
import { DmgInstance } from "./instance.js";
import { DMG_KOLY_MAGIC, DMG_KOLY_SIZE, DMG_MAX_PLIST_BYTES, DMG_SECTOR, DmgKolyCodec } from "./layout.js";

function hasKoly(tail: Uint8Array): boolean {
  return tail.length >= DMG_KOLY_SIZE && new DataView(tail.buffer, tail.byteOffset + tail.length - DMG_KOLY_SIZE, 4).getUint32(0) === DMG_KOLY_MAGIC;
}

/** qemu scores a `.dmg` name 2; a `koly` trailer is as good a sign. */
function probeDmg(input: ProbeInput): number {
  if (hasKoly(input.tail)) return 50;
  return input.name.toLowerCase().endsWith(".dmg") ? 2 : 0;
}

async function openDmg(ctx: OpenContext): Promise<FormatInstance> {
  const file = ctx.file;
  const fileSize = await file.size();
  if (fileSize < DMG_KOLY_SIZE) {
    throw new CorruptImageError(`Cannot open dmg image: the file (${fileSize} bytes) is shorter than its trailer`, { format: "dmg" });
  }
  const kolyAt = fileSize - DMG_KOLY_SIZE;
  const koly = DmgKolyCodec.decode(await readExact(file, kolyAt, DMG_KOLY_SIZE, "koly trailer", "dmg"), 0, { u64Overflow: "infinity" });
  if (koly.magic !== DMG_KOLY_MAGIC) {
    throw new CorruptImageError("Cannot open dmg image: no koly trailer at the end of the file", {
      format: "dmg",
      structure: "koly trailer",
      fileOffset: kolyAt,
    });
  }
  const inFile = (offset: number, length: number) => Number.isSafeInteger(offset + length) && offset + length <= kolyAt;
  if (!inFile(koly.dataForkOffset, koly.dataForkLength)) {
    throw new CorruptImageError("Cannot open dmg image: the data fork lies outside the file", { format: "dmg", structure: "koly trailer" });
  }
  if (koly.plistLength === 0) {
    throw new UnsupportedFeatureError(
      koly.rsrcForkLength > 0
        ? "Cannot open dmg image: images with a binary resource fork and no property list are not supported by vdisk"
        : "Cannot open dmg image: it has no property list",
      { format: "dmg" },
    );
  }
  if (koly.plistLength > DMG_MAX_PLIST_BYTES || !inFile(koly.plistOffset, koly.plistLength)) {
    throw new CorruptImageError(`Cannot open dmg image: the property list (${koly.plistLength} bytes) lies outside the file`, {
      format: "dmg",
      structure: "koly trailer",
    });
  }
  const xml = new TextDecoder().decode(await readExact(file, koly.plistOffset, koly.plistLength, "property list", "dmg"));
  const chunks = dmgChunks(mishTablesOfPlist(xml), { offset: koly.dataForkOffset, length: koly.dataForkLength });
  const lastEnd = chunks.length > 0 ? chunks[chunks.length - 1].end : 0;
  const declared = Number.isSafeInteger(koly.sectorCount * DMG_SECTOR) ? koly.sectorCount * DMG_SECTOR : 0;
  return new DmgInstance(file, Math.max(declared, lastEnd), chunks);
}

/** Apple UDIF disk images (read-only, as in qemu-img): zlib, raw, zero chunks. */
export const dmgDriver: FormatDriver = {
  name: "dmg",
  createOptions: [],
  probe: probeDmg,
  open: openDmg,
};
