/**
 * Opening a Parallels image: header validation with QEMU's limits and messages (iotests 076),
 * the catalog, and the map of host clusters in use.
 * @module
 */
import { CorruptImageError, ImageError, LimitExceededError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { readParallelsExtension, type ParallelsExtension } from "./extension.js";
import {
  PARALLELS_HEADER_SIZE,
  PARALLELS_INUSE_OPEN,
  PARALLELS_MAGIC_V1,
  PARALLELS_MAGIC_V2,
  PARALLELS_MAX_BAT_ENTRIES,
  PARALLELS_MAX_TRACKS,
  PARALLELS_VERSION,
  ParallelsHeaderCodec,
  type ParallelsHeader,
} from "./layout.js";

/** An open image's metadata. Mutable: repairs and allocations update it. */
export interface ParallelsState {
  readonly file: IoBackend;
  /** Header as decoded (version 1: high half of `nbSectors` cleared). */
  header: ParallelsHeader;
  /** True for "WithoutFreeSpace" (BAT entries in sectors). */
  readonly v1: boolean;
  readonly clusterSize: number;
  /** Sectors per BAT unit: 1 (version 1) or sectors per cluster (version 2). */
  readonly offMultiplier: number;
  /** Virtual size in bytes. */
  readonly size: number;
  readonly bat: Uint32Array;
  /** Byte offset of the data area. */
  dataStart: number;
  /** Whether `dataOff` passed QEMU's test at open. */
  dataOffOk: boolean;
  /** `dataOff` QEMU would repair it to. */
  readonly correctDataOff: number;
  /** The image was not closed cleanly (`inuse` set). */
  unclean: boolean;
  /** `inuse` as found, restored on a clean close. */
  readonly inuseAtOpen: number;
  readonly extension?: ParallelsExtension;
}

function err(message: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open parallels image: ${message}`, { format: "parallels", structure: "header", fileOffset });
}

/** Byte offset of BAT entry `i`'s cluster, or 0 when unallocated. */
export function batOffset(s: ParallelsState, i: number): number {
  return s.bat[i] * s.offMultiplier * 512;
}

/** Reads and checks the header and the catalog of the Parallels image in `file`. */
export async function readParallels(file: IoBackend, fileSize: number): Promise<ParallelsState> {
  if (fileSize < PARALLELS_HEADER_SIZE) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open parallels image: Image not in Parallels format (file of ${fileSize} bytes)`, {
      format: "parallels",
    });
  }
  const raw = await readExact(file, 0, PARALLELS_HEADER_SIZE, "header", "parallels");
  const magic = String.fromCharCode(...raw.subarray(0, 16));
  const v1 = magic === PARALLELS_MAGIC_V1;
  const dv = new DataView(raw.buffer);
  if ((!v1 && magic !== PARALLELS_MAGIC_V2) || dv.getUint32(16, true) !== PARALLELS_VERSION) {
    throw new ImageError("ERR_NOT_AN_IMAGE", "Cannot open parallels image: Image not in Parallels format", { format: "parallels" });
  }
  // Version 1 keeps the virtual size in the low 32 bits only.
  const copy = raw.slice();
  if (v1) copy.fill(0, 40, 44);
  if (dv.getUint32(60, true) > 0x1fffff) {
    throw new LimitExceededError("Cannot open parallels image: Invalid image: Too big offset (ext_off)", {
      format: "parallels",
      fileOffset: 56,
    });
  }
  let header: ParallelsHeader;
  try {
    header = ParallelsHeaderCodec.decode(copy);
  } catch {
    throw new LimitExceededError("Cannot open parallels image: virtual size past 2^53 bytes (nb_sectors)", {
      format: "parallels",
      fileOffset: 36,
    });
  }
  const tracks = header.tracks;
  if (tracks === 0) throw err("Invalid image: Zero sectors per track", 28);
  if (tracks > PARALLELS_MAX_TRACKS) {
    throw new LimitExceededError(`Cannot open parallels image: Invalid image: Too big cluster (${tracks} sectors)`, {
      format: "parallels",
      fileOffset: 28,
    });
  }
  const batEntries = header.batEntries;
  if (batEntries > PARALLELS_MAX_BAT_ENTRIES) {
    throw new LimitExceededError(`Cannot open parallels image: Catalog too large (${batEntries} entries)`, {
      format: "parallels",
      fileOffset: 32,
    });
  }
  const size = header.nbSectors * 512;
  if (!Number.isSafeInteger(size)) {
    throw new LimitExceededError(`Cannot open parallels image: virtual size of ${header.nbSectors} sectors is too large`, {
      format: "parallels",
      fileOffset: 36,
    });
  }
  const batBytes = batEntries * 4;
  if (PARALLELS_HEADER_SIZE + batBytes > fileSize) {
    throw err(`Catalog of ${batEntries} entries extends past the end of the file (${fileSize} bytes)`, 32);
  }
  const clusterSize = tracks * 512;
  const batRaw = await readExact(file, PARALLELS_HEADER_SIZE, batBytes, "catalog", "parallels");
  const bat = new Uint32Array(batEntries);
  const bdv = new DataView(batRaw.buffer, batRaw.byteOffset, batRaw.byteLength);
  for (let i = 0; i < batEntries; i++) bat[i] = bdv.getUint32(i * 4, true);

  // QEMU's data_off rule: at least the end of the BAT (version 2: rounded up to a cluster),
  // at most the end of the file; 0 means "right after the BAT" in version 1 images only.
  const fileSectors = Math.floor(fileSize / 512);
  let minOff = Math.ceil((PARALLELS_HEADER_SIZE + batBytes) / 512);
  if (!v1) minOff = Math.ceil(minOff / tracks) * tracks;
  let dataOffOk = true;
  let dataStartSectors = header.dataOff;
  if (header.dataOff === 0 && v1) {
    dataStartSectors = minOff;
  } else if (header.dataOff < minOff || header.dataOff > fileSectors) {
    dataOffOk = false;
    dataStartSectors = minOff;
  }
  let extension: ParallelsExtension | undefined;
  if (header.extOff !== 0) {
    extension = await readParallelsExtension(file, fileSize, header.extOff * 512, clusterSize);
  }
  return {
    file,
    header,
    v1,
    clusterSize,
    offMultiplier: v1 ? 1 : tracks,
    size,
    bat,
    dataStart: dataStartSectors * 512,
    dataOffOk,
    correctDataOff: dataStartSectors,
    unclean: header.inuse === PARALLELS_INUSE_OPEN,
    inuseAtOpen: header.inuse,
    extension,
  };
}
