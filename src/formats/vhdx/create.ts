/**
 * Creating VHDX images: dynamic, fixed and differencing, with qemu-img's option names and
 * defaults (block size by disk size, 1 MiB log, ZERO block states) and the layout qemu uses
 * (log at 1 MiB, then BAT, then a 1 MiB metadata region, then payload).
 * @module
 */
import type { CreateContext, CreateOptionSpec } from "../../core/format.js";
import { encodeUtf16 } from "../../codec/utf16.js";
import { ImageError, UnsupportedFeatureError, formatBytes } from "../../errors.js";
import { vhdxSetChecksum } from "./checksum.js";
import { VHDX_ZERO_GUID, randomVhdxGuid, vhdxGuidBytes } from "./guid.js";
import {
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_ZERO,
  VHDX_BAT_REGION_GUID,
  VHDX_FILE_PARAMETERS_GUID,
  VHDX_FILE_SIGNATURE,
  VHDX_HEADER1_OFFSET,
  VHDX_HEADER2_OFFSET,
  VHDX_HEADER_SECTION_SIZE,
  VHDX_HEADER_SIGNATURE,
  VHDX_HEADER_SIZE,
  VHDX_LOGICAL_SECTOR_SIZE_GUID,
  VHDX_MAX_BLOCK_SIZE,
  VHDX_MAX_VIRTUAL_SIZE,
  VHDX_META_IS_REQUIRED,
  VHDX_META_IS_VIRTUAL_DISK,
  VHDX_METADATA_REGION_GUID,
  VHDX_MIB,
  VHDX_PAGE83_GUID,
  VHDX_PARAMS_HAS_PARENT,
  VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED,
  VHDX_PARENT_LOCATOR_GUID,
  VHDX_PARENT_LOCATOR_TYPE_VHDX,
  VHDX_PHYSICAL_SECTOR_SIZE_GUID,
  VHDX_REGION_TABLE1_OFFSET,
  VHDX_REGION_TABLE2_OFFSET,
  VHDX_VIRTUAL_DISK_SIZE_GUID,
  VhdxFileIdentifier,
  VhdxFileParameters,
  VhdxHeader,
  VhdxPage83Data,
  VhdxSectorSize,
  VhdxVirtualDiskSize,
  encodeBatEntry,
  payloadBatIndex,
  vhdxGeometry,
  vhdxSequenceBytes,
} from "./layout.js";
import { encodeVhdxMetadataRegion, encodeVhdxParentLocator, type VhdxMetadataItem } from "./metadata.js";
import { readVhdxIdentity } from "./parent.js";
import { encodeVhdxRegionTable } from "./region-table.js";

/** `-o` options of `create -f vhdx` (qemu-img's names; `logical_sector_size` is vdisk's own). */
export const VHDX_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: "subformat", type: "enum", values: ["dynamic", "fixed"], help: "VHDX format type, 'dynamic' or 'fixed'", defaultText: "dynamic" },
  { name: "block_size", type: "size", help: "Block size; min 1 MiB, max 256 MiB. 0 means auto-calculate based on image size", defaultText: "0" },
  { name: "log_size", type: "size", help: "Log size; min 1 MiB", defaultText: "1M" },
  {
    name: "block_state_zero",
    type: "bool",
    help: "Mark unallocated blocks of dynamic images PAYLOAD_BLOCK_ZERO (qemu's default) instead of NOT_PRESENT",
    defaultText: "on",
  },
  {
    name: "logical_sector_size",
    type: "enum",
    values: ["512", "4096"],
    help: "Logical sector size of the virtual disk (a differencing image takes its parent's)",
    defaultText: "512",
  },
];

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", message, { format: "vhdx" });
}

/** Block size qemu picks when none is given. */
export function vhdxDefaultBlockSize(size: number): number {
  if (size > 32 * 2 ** 40) return 64 * VHDX_MIB;
  if (size > 100 * 2 ** 30) return 32 * VHDX_MIB;
  if (size > 2 ** 30) return 16 * VHDX_MIB;
  return 8 * VHDX_MIB;
}

/** How a stored parent path is written in the locator for a given name. */
function locatorPaths(name: string): Array<[string, string]> {
  const win = name.replace(/\//g, "\\");
  if (/^([a-zA-Z]:)?[\\/]/.test(name)) return [["absolute_win32_path", win]];
  return [["relative_path", win.startsWith(".") ? win : `.\\${win}`]];
}

/** Creates a VHDX image in the empty file `ctx.file`. */
export async function createVhdx(ctx: CreateContext): Promise<void> {
  const o = ctx.options;
  const io = ctx.file;
  const fixed = o.subformat === "fixed";

  let parent: { name: string; dataWriteGuid: string; logicalSectorSize: number; physicalSectorSize: number } | undefined;
  if (ctx.backing) {
    if (ctx.backing.format && ctx.backing.format !== "vhdx") {
      throw new UnsupportedFeatureError(`A VHDX differencing image needs a VHDX parent, not ${ctx.backing.format}`, { format: "vhdx" });
    }
    if (fixed) throw invalid("A fixed VHDX image cannot have a backing file");
    const pio = await ctx.openFile({ name: ctx.backing.name, relativeTo: io, writable: false, purpose: "backing" });
    try {
      parent = { name: ctx.backing.name, ...(await readVhdxIdentity(pio, ctx.kernel)) };
    } finally {
      await pio.close();
    }
  }

  const lssOption = o.logical_sector_size !== undefined ? Number(o.logical_sector_size) : undefined;
  if (lssOption !== undefined && lssOption !== 512 && lssOption !== 4096) throw invalid("Logical sector size must be 512 or 4096");
  if (parent && lssOption !== undefined && lssOption !== parent.logicalSectorSize) {
    throw invalid(`A differencing image must use its parent's logical sector size (${parent.logicalSectorSize})`);
  }
  const lss = parent?.logicalSectorSize ?? lssOption ?? 512;
  const pss = parent ? Math.max(parent.physicalSectorSize, lss) : lss;

  const size = Math.ceil(ctx.size / lss) * lss;
  if (size > VHDX_MAX_VIRTUAL_SIZE) throw invalid("Image size too large; max of 64TB");

  // Sizes round up to 1 MiB as qemu-img does; what is left must be a valid power of two.
  let blockSize = o.block_size !== undefined ? Math.ceil(Number(o.block_size) / VHDX_MIB) * VHDX_MIB : 0;
  if (blockSize === 0) blockSize = vhdxDefaultBlockSize(size);
  if ((blockSize & (blockSize - 1)) !== 0) throw invalid("Block size must be a power of two");
  if (blockSize > VHDX_MAX_BLOCK_SIZE) throw invalid(`Block size must not exceed ${VHDX_MAX_BLOCK_SIZE}`);
  const logSize = o.log_size !== undefined ? Math.ceil(Number(o.log_size) / VHDX_MIB) * VHDX_MIB : VHDX_MIB;
  if (logSize < VHDX_MIB) throw invalid("Log size must be a multiple of 1 MB");
  if (logSize >= 2 ** 32) throw invalid("Log size must be smaller than 4 GB");
  const zeroState = o.block_state_zero !== false;

  const g = vhdxGeometry(size, blockSize, lss, !!parent);
  const logOffset = VHDX_HEADER_SECTION_SIZE;
  const batOffset = logOffset + logSize;
  // qemu sizes the BAT of an empty disk with an unsigned underflow ((0 - 1) >> log2(chunkRatio)
  // entries) and refuses a smaller region; give empty disks that much (sparse) room.
  const batEntries = g.payloadBlocks === 0 && !parent ? Math.floor(0xffffffff / g.chunkRatio) : g.batEntries;
  const batLength = Math.max(VHDX_MIB, Math.ceil((batEntries * 8) / VHDX_MIB) * VHDX_MIB);
  const metadataOffset = batOffset + batLength;
  const metadataLength = VHDX_MIB;
  const dataStart = metadataOffset + metadataLength;
  const fileSize = fixed ? dataStart + g.payloadBlocks * blockSize : dataStart;
  if (!Number.isSafeInteger(fileSize)) throw invalid(`Image of ${formatBytes(size)} is too large`);

  await io.truncate(fileSize);

  // BAT: written in 1 MiB pieces so a large disk never needs the whole table in memory.
  const state = parent ? PAYLOAD_BLOCK_NOT_PRESENT : fixed ? PAYLOAD_BLOCK_FULLY_PRESENT : zeroState ? PAYLOAD_BLOCK_ZERO : PAYLOAD_BLOCK_NOT_PRESENT;
  if (state !== PAYLOAD_BLOCK_NOT_PRESENT) {
    const perPiece = VHDX_MIB / 8;
    let piece = new Uint8Array(VHDX_MIB);
    let view = new DataView(piece.buffer);
    let pieceIndex = 0;
    const flush = async (upTo: number) => {
      await io.write(batOffset + pieceIndex * VHDX_MIB, piece.subarray(0, upTo));
    };
    for (let b = 0; b < g.payloadBlocks; b++) {
      const idx = payloadBatIndex(g, b);
      const p = Math.floor(idx / perPiece);
      if (p !== pieceIndex) {
        await flush(VHDX_MIB);
        piece = new Uint8Array(VHDX_MIB);
        view = new DataView(piece.buffer);
        pieceIndex = p;
      }
      const [lo, hi] = encodeBatEntry(state, state === PAYLOAD_BLOCK_FULLY_PRESENT ? dataStart + b * blockSize : 0);
      const at = (idx - p * perPiece) * 8;
      view.setUint32(at, lo, true);
      view.setUint32(at + 4, hi, true);
    }
    if (g.payloadBlocks > 0) await flush(Math.min(VHDX_MIB, g.batEntries * 8 - pieceIndex * VHDX_MIB));
  }

  const required = VHDX_META_IS_REQUIRED;
  const disk = VHDX_META_IS_REQUIRED | VHDX_META_IS_VIRTUAL_DISK;
  const flags = parent ? VHDX_PARAMS_HAS_PARENT : fixed ? VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED : 0;
  const items: VhdxMetadataItem[] = [
    { guid: VHDX_FILE_PARAMETERS_GUID, flags: required, data: VhdxFileParameters.encode({ blockSize, flags }) },
    { guid: VHDX_VIRTUAL_DISK_SIZE_GUID, flags: disk, data: VhdxVirtualDiskSize.encode({ size }) },
    { guid: VHDX_PAGE83_GUID, flags: disk, data: VhdxPage83Data.encode({ guid: vhdxGuidBytes(randomVhdxGuid()) }) },
    { guid: VHDX_LOGICAL_SECTOR_SIZE_GUID, flags: disk, data: VhdxSectorSize.encode({ size: lss }) },
    { guid: VHDX_PHYSICAL_SECTOR_SIZE_GUID, flags: disk, data: VhdxSectorSize.encode({ size: pss }) },
  ];
  if (parent) {
    const pairs: Array<[string, string]> = [["parent_linkage", `{${parent.dataWriteGuid}}`], ...locatorPaths(parent.name)];
    items.push({ guid: VHDX_PARENT_LOCATOR_GUID, flags: required, data: encodeVhdxParentLocator(VHDX_PARENT_LOCATOR_TYPE_VHDX, pairs) });
  }
  await io.write(metadataOffset, encodeVhdxMetadataRegion(items, metadataLength));

  const regionTable = encodeVhdxRegionTable(ctx.kernel, [
    { guid: VHDX_BAT_REGION_GUID, fileOffset: batOffset, length: batLength, required: true },
    { guid: VHDX_METADATA_REGION_GUID, fileOffset: metadataOffset, length: metadataLength, required: true },
  ]);
  await io.write(VHDX_REGION_TABLE1_OFFSET, regionTable);
  await io.write(VHDX_REGION_TABLE2_OFFSET, regionTable);

  const fileWriteGuid = vhdxGuidBytes(randomVhdxGuid());
  const dataWriteGuid = vhdxGuidBytes(randomVhdxGuid());
  for (const [offset, seq] of [[VHDX_HEADER1_OFFSET, 1n], [VHDX_HEADER2_OFFSET, 2n]] as const) {
    const raw = new Uint8Array(VHDX_HEADER_SIZE);
    VhdxHeader.encode(
      {
        signature: VHDX_HEADER_SIGNATURE,
        checksum: 0,
        sequenceNumber: vhdxSequenceBytes(seq),
        fileWriteGuid,
        dataWriteGuid,
        logGuid: vhdxGuidBytes(VHDX_ZERO_GUID),
        logVersion: 0,
        version: 1,
        logLength: logSize,
        logOffset,
      },
      raw,
    );
    vhdxSetChecksum(ctx.kernel, raw, VhdxHeader.offsetOf("checksum"));
    await io.write(offset, raw);
  }
  // The signature goes last, so an interrupted create is not mistaken for a VHDX.
  await io.write(0, VhdxFileIdentifier.encode({ signature: VHDX_FILE_SIGNATURE, creator: encodeUtf16("vdisk", true) }));
  await io.flush();
}
