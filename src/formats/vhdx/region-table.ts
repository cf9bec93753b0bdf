/**
 * The region table: where the BAT and the metadata region are. Two copies of 64 KiB; the first
 * valid one is used, and a bad or differing second copy is reported by `check` (and rewritten
 * by `check -r all`).
 * @module
 */
import { CorruptImageError, UnsupportedFeatureError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import type { Kernel } from "../../kernel/kernel.js";
import { vhdxChecksum, vhdxSetChecksum, vhdxStoredChecksum } from "./checksum.js";
import { vhdxGuidBytes, vhdxGuidText } from "./guid.js";
import {
  VHDX_BAT_REGION_GUID,
  VHDX_MAX_REGION_ENTRIES,
  VHDX_METADATA_REGION_GUID,
  VHDX_MIB,
  VHDX_REGION_REQUIRED,
  VHDX_REGION_SIGNATURE,
  VHDX_REGION_TABLE1_OFFSET,
  VHDX_REGION_TABLE2_OFFSET,
  VHDX_REGION_TABLE_SIZE,
  VhdxRegionTableEntry,
  VhdxRegionTableHeader,
} from "./layout.js";

/** One region: a GUID and a 1 MiB-aligned byte range of the file. */
export interface VhdxRegion {
  readonly guid: string;
  readonly fileOffset: number;
  readonly length: number;
  readonly required: boolean;
}

/** The decoded region table. */
export interface VhdxRegionTable {
  /** Every entry, known or not, in table order. */
  readonly regions: readonly VhdxRegion[];
  readonly bat: VhdxRegion;
  readonly metadata: VhdxRegion;
  /** Which copy was used (1 or 2). */
  readonly copy: 1 | 2;
  /** The 64 KiB of the copy used (for repairing the other). */
  readonly raw: Uint8Array;
  /** Problems with the copies, for `check` (empty when both are valid and identical). */
  problems: string[];
}

const CRC_AT = VhdxRegionTableHeader.offsetOf("checksum");
const OFFSETS = [VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE2_OFFSET] as const;

function corrupt(copy: number, message: string): CorruptImageError {
  return new CorruptImageError(`Cannot open vhdx image: region table ${copy} ${message}`, {
    format: "vhdx",
    structure: "region table",
    fileOffset: OFFSETS[copy - 1],
  });
}

/** A byte range that regions must not overlap (the log, the header section). */
export interface VhdxReservedRange {
  readonly name: string;
  readonly start: number;
  readonly length: number;
}

/**
 * Decodes one copy. Throws CorruptImageError (or UnsupportedFeatureError for a required region
 * vdisk does not know) naming the copy.
 */
export function parseVhdxRegionTable(
  kernel: Kernel,
  raw: Uint8Array,
  copy: 1 | 2,
  reserved: readonly VhdxReservedRange[],
): Omit<VhdxRegionTable, "problems"> {
  const hdr = VhdxRegionTableHeader.decode(raw);
  if (hdr.signature !== VHDX_REGION_SIGNATURE) {
    throw corrupt(copy, `has signature '${hdr.signature.replace(/[^\x20-\x7e]/g, "?")}' instead of 'regi'`);
  }
  const stored = vhdxStoredChecksum(raw, CRC_AT);
  const crc = vhdxChecksum(kernel, raw, CRC_AT);
  if (crc !== stored) throw corrupt(copy, `has a bad checksum (stored 0x${stored.toString(16)}, computed 0x${crc.toString(16)})`);
  if (hdr.entryCount > VHDX_MAX_REGION_ENTRIES) {
    throw corrupt(copy, `has ${hdr.entryCount} entries, more than the limit of ${VHDX_MAX_REGION_ENTRIES}`);
  }
  const regions: VhdxRegion[] = [];
  const taken: VhdxReservedRange[] = [...reserved];
  let bat: VhdxRegion | undefined;
  let metadata: VhdxRegion | undefined;
  for (let i = 0; i < hdr.entryCount; i++) {
    let e;
    try {
      e = VhdxRegionTableEntry.decode(raw, VhdxRegionTableHeader.size + i * VhdxRegionTableEntry.size);
    } catch {
      throw corrupt(copy, `entry ${i} has a file offset past 2^53`);
    }
    const guid = vhdxGuidText(e.guid);
    const region: VhdxRegion = { guid, fileOffset: e.fileOffset, length: e.length, required: (e.flags & VHDX_REGION_REQUIRED) !== 0 };
    const name = guid === VHDX_BAT_REGION_GUID ? "BAT" : guid === VHDX_METADATA_REGION_GUID ? "metadata" : `{${guid}}`;
    if (e.fileOffset % VHDX_MIB !== 0 || e.fileOffset < VHDX_MIB) {
      throw corrupt(copy, `places the ${name} region at ${e.fileOffset}, which is not a multiple of 1 MiB past the header section`);
    }
    if (e.length % VHDX_MIB !== 0) {
      throw corrupt(copy, `gives the ${name} region a length of ${e.length}, which is not a multiple of 1 MiB`);
    }
    for (const t of taken) {
      if (e.length > 0 && t.length > 0 && e.fileOffset < t.start + t.length && t.start < e.fileOffset + e.length) {
        throw corrupt(
          copy,
          `places the ${name} region (${formatBytes(e.length)} at ${e.fileOffset}) over the ${t.name} (${formatBytes(t.length)} at ${t.start})`,
        );
      }
    }
    taken.push({ name: `${name} region`, start: e.fileOffset, length: e.length });
    if (guid === VHDX_BAT_REGION_GUID) {
      if (bat) throw corrupt(copy, "lists the BAT region twice");
      bat = region;
    } else if (guid === VHDX_METADATA_REGION_GUID) {
      if (metadata) throw corrupt(copy, "lists the metadata region twice");
      metadata = region;
    } else if (region.required) {
      throw new UnsupportedFeatureError(
        `Cannot open vhdx image: region table ${copy} lists a required region {${guid}} that vdisk does not know`,
        { format: "vhdx", structure: "region table", fileOffset: OFFSETS[copy - 1] },
      );
    }
    regions.push(region);
  }
  if (!bat) throw corrupt(copy, "has no BAT region");
  if (!metadata) throw corrupt(copy, "has no metadata region");
  return { regions, bat, metadata, copy, raw };
}

/**
 * Reads both copies and returns the first valid one. Throws the first copy's error when
 * neither is valid.
 */
export async function readVhdxRegionTable(
  io: IoBackend,
  kernel: Kernel,
  reserved: readonly VhdxReservedRange[],
): Promise<VhdxRegionTable> {
  const raws = await Promise.all(OFFSETS.map((o) => readZeroPadded(io, o, VHDX_REGION_TABLE_SIZE)));
  const results: Array<Omit<VhdxRegionTable, "problems"> | Error> = raws.map((raw, i) => {
    try {
      return parseVhdxRegionTable(kernel, raw, (i + 1) as 1 | 2, reserved);
    } catch (e) {
      return e as Error;
    }
  });
  const problems: string[] = [];
  for (const r of results) {
    if (r instanceof Error) problems.push(r.message.replace(/^Cannot open vhdx image: /, "VHDX "));
  }
  const good = results.find((r): r is Omit<VhdxRegionTable, "problems"> => !(r instanceof Error));
  if (!good) {
    const first = results[0] as Error;
    if (first instanceof UnsupportedFeatureError) throw first;
    const second = results[1] as Error;
    throw new CorruptImageError(
      `${first.message}; ${second.message.replace(/^Cannot open vhdx image: /, "")}`,
      { format: "vhdx", structure: "region table", fileOffset: VHDX_REGION_TABLE1_OFFSET },
    );
  }
  if (problems.length === 0 && !raws[0].every((b, i) => b === raws[1][i])) {
    problems.push("VHDX region tables 1 and 2 differ");
  }
  return { ...good, problems };
}

/** Builds one 64 KiB region table copy (checksummed) listing `regions`. */
export function encodeVhdxRegionTable(kernel: Kernel, regions: readonly VhdxRegion[]): Uint8Array {
  const raw = new Uint8Array(VHDX_REGION_TABLE_SIZE);
  VhdxRegionTableHeader.encode({ signature: VHDX_REGION_SIGNATURE, checksum: 0, entryCount: regions.length, reserved: 0 }, raw);
  regions.forEach((r, i) => {
    VhdxRegionTableEntry.encode(
      { guid: vhdxGuidBytes(r.guid), fileOffset: r.fileOffset, length: r.length, flags: r.required ? VHDX_REGION_REQUIRED : 0 },
      raw,
      VhdxRegionTableHeader.size + i * VhdxRegionTableEntry.size,
    );
  });
  vhdxSetChecksum(kernel, raw, CRC_AT);
  return raw;
}

/** Offsets of the two copies, for repair. */
export const VHDX_REGION_TABLE_OFFSETS = OFFSETS;
