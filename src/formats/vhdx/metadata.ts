/**
 * The metadata region: its table of items and the items vdisk understands (file parameters,
 * virtual disk size, page 83 data, sector sizes, parent locator).
 * @module
 */
import { FieldOverflowError } from "../../codec/struct.js";
import { decodeUtf16, encodeUtf16 } from "../../codec/utf16.js";
import { CorruptImageError, LimitExceededError, UnsupportedFeatureError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { vhdxGuidBytes, vhdxGuidText } from "./guid.js";
import {
  VHDX_FILE_PARAMETERS_GUID,
  VHDX_LOGICAL_SECTOR_SIZE_GUID,
  VHDX_MAX_BLOCK_SIZE,
  VHDX_MAX_LOCATOR_ENTRIES,
  VHDX_MAX_METADATA_ENTRIES,
  VHDX_MAX_METADATA_ITEM,
  VHDX_MAX_VIRTUAL_SIZE,
  VHDX_META_IS_REQUIRED,
  VHDX_METADATA_SIGNATURE,
  VHDX_METADATA_TABLE_SIZE,
  VHDX_MIN_BLOCK_SIZE,
  VHDX_PAGE83_GUID,
  VHDX_PARAMS_HAS_PARENT,
  VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED,
  VHDX_PARENT_LOCATOR_GUID,
  VHDX_PHYSICAL_SECTOR_SIZE_GUID,
  VHDX_VIRTUAL_DISK_SIZE_GUID,
  VhdxFileParameters,
  VhdxMetadataTableEntry,
  VhdxMetadataTableHeader,
  VhdxPage83Data,
  VhdxParentLocatorEntry,
  VhdxParentLocatorHeader,
  VhdxSectorSize,
  VhdxVirtualDiskSize,
} from "./layout.js";
import type { VhdxRegion } from "./region-table.js";

/** A parent locator: its type and key/value pairs in stored order. */
export interface VhdxParentLocator {
  readonly locatorType: string;
  readonly entries: ReadonlyArray<readonly [key: string, value: string]>;
}

/** One entry of the metadata table. */
export interface VhdxMetadataEntry {
  readonly guid: string;
  /** Offset inside the metadata region. */
  readonly offset: number;
  readonly length: number;
  readonly flags: number;
}

/** The metadata vdisk uses, validated. */
export interface VhdxMetadata {
  readonly entries: readonly VhdxMetadataEntry[];
  readonly blockSize: number;
  readonly fileParameterFlags: number;
  readonly leaveBlocksAllocated: boolean;
  readonly hasParent: boolean;
  readonly virtualSize: number;
  readonly page83: string;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly parentLocator?: VhdxParentLocator;
}

const KNOWN: Record<string, { name: string; min: number }> = {
  [VHDX_FILE_PARAMETERS_GUID]: { name: "file parameters", min: VhdxFileParameters.size },
  [VHDX_VIRTUAL_DISK_SIZE_GUID]: { name: "virtual disk size", min: VhdxVirtualDiskSize.size },
  [VHDX_PAGE83_GUID]: { name: "page 83 data", min: VhdxPage83Data.size },
  [VHDX_LOGICAL_SECTOR_SIZE_GUID]: { name: "logical sector size", min: VhdxSectorSize.size },
  [VHDX_PHYSICAL_SECTOR_SIZE_GUID]: { name: "physical sector size", min: VhdxSectorSize.size },
  [VHDX_PARENT_LOCATOR_GUID]: { name: "parent locator", min: VhdxParentLocatorHeader.size },
};

function corrupt(message: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open vhdx image: ${message}`, { format: "vhdx", structure: "metadata", fileOffset });
}

/** Decodes the metadata table at the start of the metadata region (64 KiB). */
export function parseVhdxMetadataTable(table: Uint8Array, region: VhdxRegion): VhdxMetadataEntry[] {
  const hdr = VhdxMetadataTableHeader.decode(table);
  if (hdr.signature !== VHDX_METADATA_SIGNATURE) {
    throw corrupt(`metadata table has signature '${hdr.signature.replace(/[^\x20-\x7e]/g, "?")}' instead of 'metadata'`, region.fileOffset);
  }
  if (hdr.entryCount > VHDX_MAX_METADATA_ENTRIES) {
    throw corrupt(`metadata table has ${hdr.entryCount} entries, more than the limit of ${VHDX_MAX_METADATA_ENTRIES}`, region.fileOffset);
  }
  const entries: VhdxMetadataEntry[] = [];
  for (let i = 0; i < hdr.entryCount; i++) {
    const at = VhdxMetadataTableHeader.size + i * VhdxMetadataTableEntry.size;
    const e = VhdxMetadataTableEntry.decode(table, at);
    const guid = vhdxGuidText(e.itemId);
    const name = KNOWN[guid]?.name ?? `item {${guid}}`;
    if (e.length > VHDX_MAX_METADATA_ITEM) {
      throw corrupt(`metadata ${name} is ${formatBytes(e.length)}, more than the limit of 1 MiB`, region.fileOffset + at);
    }
    if (e.length > 0 && (e.offset < VHDX_METADATA_TABLE_SIZE || e.offset + e.length > region.length)) {
      throw corrupt(
        `metadata ${name} (${e.length} bytes at ${e.offset}) lies outside the item area of the ${formatBytes(region.length)} metadata region`,
        region.fileOffset + at,
      );
    }
    const known = KNOWN[guid];
    if (known) {
      if (entries.some((x) => x.guid === guid)) throw corrupt(`metadata table lists the ${name} twice`, region.fileOffset + at);
      if (e.length < known.min) {
        throw corrupt(`metadata ${name} is ${e.length} bytes, less than the ${known.min} it needs`, region.fileOffset + at);
      }
    } else if (e.flags & VHDX_META_IS_REQUIRED) {
      throw new UnsupportedFeatureError(
        `Cannot open vhdx image: the metadata table lists a required item {${guid}} that vdisk does not know`,
        { format: "vhdx", structure: "metadata", fileOffset: region.fileOffset + at },
      );
    }
    for (const other of entries) {
      if (e.length > 0 && other.length > 0 && e.offset < other.offset + other.length && other.offset < e.offset + e.length) {
        throw corrupt(`metadata ${name} overlaps item {${other.guid}}`, region.fileOffset + at);
      }
    }
    entries.push({ guid, offset: e.offset, length: e.length, flags: e.flags });
  }
  return entries;
}

/** Parses a parent locator item. Throws CorruptImageError when a key or value lies outside it. */
export function parseVhdxParentLocator(item: Uint8Array): VhdxParentLocator {
  const hdr = VhdxParentLocatorHeader.decode(item);
  const count = hdr.keyValueCount;
  if (count > VHDX_MAX_LOCATOR_ENTRIES || VhdxParentLocatorHeader.size + count * VhdxParentLocatorEntry.size > item.length) {
    throw corrupt(`parent locator claims ${count} key/value entries, more than its ${item.length} bytes hold`);
  }
  const entries: Array<[string, string]> = [];
  const text = (off: number, len: number, what: string): string => {
    if (off + len > item.length || len % 2 !== 0) {
      throw corrupt(`parent locator ${what} (${len} bytes at ${off}) lies outside the ${item.length}-byte item`);
    }
    return decodeUtf16(item.subarray(off, off + len), true);
  };
  for (let i = 0; i < count; i++) {
    const e = VhdxParentLocatorEntry.decode(item, VhdxParentLocatorHeader.size + i * VhdxParentLocatorEntry.size);
    entries.push([text(e.keyOffset, e.keyLength, `key ${i}`), text(e.valueOffset, e.valueLength, `value ${i}`)]);
  }
  return { locatorType: vhdxGuidText(hdr.locatorType), entries };
}

/** Encodes a parent locator item (header, entries, then the UTF-16LE strings). */
export function encodeVhdxParentLocator(locatorType: string, pairs: ReadonlyArray<readonly [string, string]>): Uint8Array {
  const strings = pairs.map(([k, v]) => [encodeUtf16(k, true), encodeUtf16(v, true)] as const);
  let pos = VhdxParentLocatorHeader.size + pairs.length * VhdxParentLocatorEntry.size;
  const total = strings.reduce((n, [k, v]) => n + k.length + v.length, pos);
  const out = new Uint8Array(total);
  VhdxParentLocatorHeader.encode({ locatorType: vhdxGuidBytes(locatorType), reserved: 0, keyValueCount: pairs.length }, out);
  strings.forEach(([k, v], i) => {
    VhdxParentLocatorEntry.encode(
      { keyOffset: pos, valueOffset: pos + k.length, keyLength: k.length, valueLength: v.length },
      out,
      VhdxParentLocatorHeader.size + i * VhdxParentLocatorEntry.size,
    );
    out.set(k, pos);
    out.set(v, pos + k.length);
    pos += k.length + v.length;
  });
  return out;
}

/** The value of `key` in a parent locator, or undefined. */
export function vhdxLocatorValue(locator: VhdxParentLocator, key: string): string | undefined {
  return locator.entries.find(([k]) => k === key)?.[1];
}

/**
 * Reads and validates the metadata region. Throws CorruptImageError, LimitExceededError or
 * UnsupportedFeatureError with a message naming the item and value.
 */
export async function readVhdxMetadata(io: IoBackend, region: VhdxRegion): Promise<VhdxMetadata> {
  if (region.length < VHDX_METADATA_TABLE_SIZE) {
    throw corrupt(`metadata region is ${formatBytes(region.length)}, too small for its 64 KiB table`, region.fileOffset);
  }
  const table = await readExact(io, region.fileOffset, VHDX_METADATA_TABLE_SIZE, "metadata table", "vhdx");
  const entries = parseVhdxMetadataTable(table, region);
  const item = async (guid: string, required: boolean): Promise<Uint8Array | undefined> => {
    const e = entries.find((x) => x.guid === guid);
    if (!e) {
      if (required) throw corrupt(`the metadata region has no ${KNOWN[guid].name} item`, region.fileOffset);
      return undefined;
    }
    return readExact(io, region.fileOffset + e.offset, e.length, `metadata ${KNOWN[guid].name}`, "vhdx");
  };
  const params = VhdxFileParameters.decode((await item(VHDX_FILE_PARAMETERS_GUID, true))!);
  let virtualSize: number;
  try {
    virtualSize = VhdxVirtualDiskSize.decode((await item(VHDX_VIRTUAL_DISK_SIZE_GUID, true))!).size;
  } catch (e) {
    if (e instanceof FieldOverflowError) throw new LimitExceededError("Cannot open vhdx image: virtual disk size exceeds 2^53 bytes", { format: "vhdx", structure: "metadata" });
    throw e;
  }
  const page83 = vhdxGuidText(VhdxPage83Data.decode((await item(VHDX_PAGE83_GUID, true))!).guid);
  const logicalSectorSize = VhdxSectorSize.decode((await item(VHDX_LOGICAL_SECTOR_SIZE_GUID, true))!).size;
  const physicalSectorSize = VhdxSectorSize.decode((await item(VHDX_PHYSICAL_SECTOR_SIZE_GUID, true))!).size;
  const locatorBytes = await item(VHDX_PARENT_LOCATOR_GUID, false);

  const bs = params.blockSize;
  if (bs < VHDX_MIN_BLOCK_SIZE || bs > VHDX_MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw corrupt(`block size ${bs} is not a power of two between 1 MiB and 256 MiB`);
  }
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) {
    throw corrupt(`logical sector size ${logicalSectorSize} is neither 512 nor 4096`);
  }
  if (physicalSectorSize !== 512 && physicalSectorSize !== 4096) {
    throw corrupt(`physical sector size ${physicalSectorSize} is neither 512 nor 4096`);
  }
  if (virtualSize > VHDX_MAX_VIRTUAL_SIZE) {
    throw new LimitExceededError(`Cannot open vhdx image: virtual disk size of ${formatBytes(virtualSize)} exceeds the VHDX limit of 64 TiB`, {
      format: "vhdx",
      structure: "metadata",
    });
  }
  if (virtualSize % logicalSectorSize !== 0) {
    throw corrupt(`virtual disk size ${virtualSize} is not a multiple of the ${logicalSectorSize}-byte logical sector`);
  }
  const hasParent = (params.flags & VHDX_PARAMS_HAS_PARENT) !== 0;
  let parentLocator: VhdxParentLocator | undefined;
  if (hasParent) {
    if (!locatorBytes) throw corrupt("the file is a differencing image but has no parent locator");
    parentLocator = parseVhdxParentLocator(locatorBytes);
  }
  return {
    entries,
    blockSize: bs,
    fileParameterFlags: params.flags,
    leaveBlocksAllocated: !hasParent && (params.flags & VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED) !== 0,
    hasParent,
    virtualSize,
    page83,
    logicalSectorSize,
    physicalSectorSize,
    parentLocator,
  };
}

/** One item to place in a new metadata region. */
export interface VhdxMetadataItem {
  readonly guid: string;
  readonly flags: number;
  readonly data: Uint8Array;
}

/**
 * Builds a metadata region of `regionLength` bytes: the table, then the items packed from
 * 64 KiB on (each 8-byte aligned).
 */
export function encodeVhdxMetadataRegion(items: readonly VhdxMetadataItem[], regionLength: number): Uint8Array {
  const out = new Uint8Array(regionLength);
  VhdxMetadataTableHeader.encode(
    { signature: VHDX_METADATA_SIGNATURE, reserved: 0, entryCount: items.length, reserved2: new Uint8Array(20) },
    out,
  );
  let pos = VHDX_METADATA_TABLE_SIZE;
  items.forEach((it, i) => {
    VhdxMetadataTableEntry.encode(
      { itemId: vhdxGuidBytes(it.guid), offset: pos, length: it.data.length, flags: it.flags, reserved: 0 },
      out,
      VhdxMetadataTableHeader.size + i * VhdxMetadataTableEntry.size,
    );
    out.set(it.data, pos);
    pos += Math.ceil(it.data.length / 8) * 8;
  });
  if (pos > regionLength) throw new RangeError(`metadata items need ${pos} bytes, the region has ${regionLength}`);
  return out;
}
