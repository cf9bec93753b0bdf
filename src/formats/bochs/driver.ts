/**
 * The bochs driver (read-only): probing, header validation with qemu's checks and wording, and
 * the open instance.
 * @module
 */
import type { FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { CorruptImageError, UnsupportedFeatureError } from "../../errors.js";
import { readExact } from "../../io/helpers.js";
import { BochsInstance } from "./instance.js";
import {
  BOCHS_HEADER_SIZE,
  BOCHS_MAGIC,
  BOCHS_MAX_CATALOG_ENTRIES,
  BOCHS_MAX_EXTENT_SIZE,
  BOCHS_SECTOR,
  BOCHS_SUBTYPE_GROWING,
  BOCHS_TYPE_REDOLOG,
  BOCHS_VERSION_1,
  BOCHS_VERSION_2,
  BochsHeaderCodec,
  bochsText,
} from "./layout.js";

function probeBochs(input: ProbeInput): number {
  if (input.head.length < BOCHS_HEADER_SIZE) return 0;
  const h = BochsHeaderCodec.decode(input.head, 0, { u64Overflow: "infinity" });
  const known = h.version === BOCHS_VERSION_1 || h.version === BOCHS_VERSION_2;
  return bochsText(h.magic) === BOCHS_MAGIC && bochsText(h.type) === BOCHS_TYPE_REDOLOG &&
      bochsText(h.subtype) === BOCHS_SUBTYPE_GROWING && known
    ? 100
    : 0;
}

function corrupt(message: string, fileOffset: number): CorruptImageError {
  return new CorruptImageError(message, { format: "bochs", structure: "header", fileOffset });
}

async function openBochs(ctx: OpenContext): Promise<FormatInstance> {
  const file = ctx.file;
  const head = await readExact(file, 0, BOCHS_HEADER_SIZE, "header", "bochs");
  const h = BochsHeaderCodec.decode(head, 0, { u64Overflow: "infinity" });
  if (
    bochsText(h.magic) !== BOCHS_MAGIC || bochsText(h.type) !== BOCHS_TYPE_REDOLOG ||
    bochsText(h.subtype) !== BOCHS_SUBTYPE_GROWING
  ) {
    throw new CorruptImageError("Image not in Bochs format", { format: "bochs", structure: "header", fileOffset: 0 });
  }
  if (h.version !== BOCHS_VERSION_1 && h.version !== BOCHS_VERSION_2) {
    throw new UnsupportedFeatureError(`Unsupported Bochs image version 0x${h.version.toString(16)}`, { format: "bochs" });
  }
  // Version 1 headers keep the u64 disk size where version 2 has a reserved word.
  const diskSize = h.version === BOCHS_VERSION_1
    ? h.reserved + (Number.isFinite(h.diskSize) ? (h.diskSize % 2 ** 32) * 2 ** 32 : Infinity)
    : h.diskSize;
  const size = Math.floor(diskSize / BOCHS_SECTOR) * BOCHS_SECTOR;
  if (h.catalogEntries > BOCHS_MAX_CATALOG_ENTRIES) throw corrupt("Catalog size is too large", BochsHeaderCodec.offsetOf("catalogEntries"));
  if (h.extentSize < BOCHS_SECTOR) throw corrupt("Extent size must be at least 512", BochsHeaderCodec.offsetOf("extentSize"));
  if (h.extentSize > BOCHS_MAX_EXTENT_SIZE) {
    throw corrupt(`Extent size ${h.extentSize} is too large`, BochsHeaderCodec.offsetOf("extentSize"));
  }
  if (h.catalogEntries < Math.ceil(size / h.extentSize)) {
    throw corrupt("Catalog size is too small for this disk size", BochsHeaderCodec.offsetOf("catalogEntries"));
  }
  // A size past 2^53 needs more catalog entries than any accepted catalog holds (caught above).
  if (!Number.isSafeInteger(size)) throw corrupt("Disk size is too large", BochsHeaderCodec.offsetOf("diskSize"));
  if (h.bitmapSize === 0) throw corrupt("Bitmap size must not be zero", BochsHeaderCodec.offsetOf("bitmapSize"));
  // The catalog (at most 2 GiB, bounded above) is read whole: one u32 per extent.
  const catalogBytes = h.catalogEntries * 4;
  const raw = await readExact(file, h.headerSize, catalogBytes, "catalog", "bochs");
  const catalog = new Uint32Array(h.catalogEntries);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < catalog.length; i++) catalog[i] = view.getUint32(i * 4, true);
  return new BochsInstance({
    file,
    size,
    catalog,
    extentSize: h.extentSize,
    bitmapSectors: Math.ceil(h.bitmapSize / BOCHS_SECTOR),
    extentSectors: Math.ceil(h.extentSize / BOCHS_SECTOR),
    dataOffset: h.headerSize + catalogBytes,
    version: h.version,
  });
}

/** Bochs growing images (read-only, as in qemu-img). */
export const bochsDriver: FormatDriver = {
  name: "bochs",
  createOptions: [],
  probe: probeBochs,
  open: openBochs,
};
