/**
 * Reading and validating a VDI header and its block map, with QEMU's limits and messages
 * (iotests 084). Every size read from the file is bounded before it sizes an allocation.
 * @module
 */
import { isNullUuid } from "../../codec/uuid.js";
import { CorruptImageError, ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact, readZeroPadded } from "../../io/helpers.js";
import {
  VDI_BLOCKS_IN_IMAGE_MAX,
  VDI_BLOCK_SIZE,
  VDI_DISK_SIZE_MAX,
  VDI_DISK_SIZE_OFFSET,
  VDI_HEADER_SIZE,
  VDI_SECTOR_SIZE,
  VDI_SIGNATURE,
  VDI_VERSION_1_1,
  VdiHeaderCodec,
  VdiImageType,
  type VdiHeader,
} from "./layout.js";

/** A validated VDI header with its block map. */
export interface VdiOpened {
  readonly header: VdiHeader;
  /** Virtual size in bytes (the header's size rounded up to a sector, as QEMU does). */
  readonly size: number;
  /**
   * The block map entries stored in the file. Entries the file does not reach (a truncated
   * image) are not kept: they read as unallocated.
   */
  readonly bmap: Uint32Array;
  /** Why writes must be refused, when the layout is unsafe to write (else undefined). */
  readonly writeBlocker?: string;
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

function unsupported(message: string, fileOffset?: number): ImageError {
  return new UnsupportedFeatureError(`Cannot open vdi image: ${message}`, { format: "vdi", structure: "header", fileOffset });
}

/** Reads and checks the header and the block map of the VDI in `file`. */
export async function readVdi(file: IoBackend, fileSize: number): Promise<VdiOpened> {
  if (fileSize < VDI_HEADER_SIZE) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open vdi image: File too small for a VDI header (${fileSize} bytes)`, {
      format: "vdi",
      structure: "header",
    });
  }
  const raw = await readZeroPadded(file, 0, VDI_HEADER_SIZE);
  const dv = new DataView(raw.buffer);
  // The size is checked on the raw u64 first: it may lie past 2^53.
  const sizeHi = dv.getUint32(VDI_DISK_SIZE_OFFSET + 4, true);
  const sizeLo = dv.getUint32(VDI_DISK_SIZE_OFFSET, true);
  const rawSize = (BigInt(sizeHi) << 32n) | BigInt(sizeLo);
  if (rawSize > BigInt(VDI_DISK_SIZE_MAX)) {
    throw unsupported(`Unsupported VDI image size (size is ${hex(rawSize)}, max supported is ${hex(VDI_DISK_SIZE_MAX)})`, VDI_DISK_SIZE_OFFSET);
  }
  const h = VdiHeaderCodec.decode(raw);
  const size = Math.ceil(h.diskSize / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
  if (h.signature !== VDI_SIGNATURE) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open vdi image: Image not in VDI format (bad signature ${h.signature.toString(16).padStart(8, "0")})`, {
      format: "vdi",
      structure: "header",
      fileOffset: 64,
    });
  }
  if (h.version !== VDI_VERSION_1_1) {
    throw unsupported(`unsupported VDI image (version ${h.version >>> 16}.${h.version & 0xffff})`, 68);
  }
  if (h.offsetBmap % VDI_SECTOR_SIZE !== 0) {
    throw unsupported(`unsupported VDI image (unaligned block map offset ${hex(h.offsetBmap)})`, 340);
  }
  if (h.offsetData % VDI_SECTOR_SIZE !== 0) {
    throw unsupported(`unsupported VDI image (unaligned data offset ${hex(h.offsetData)})`, 344);
  }
  if (h.sectorSize !== VDI_SECTOR_SIZE) {
    throw unsupported(`unsupported VDI image (sector size ${h.sectorSize} is not ${VDI_SECTOR_SIZE})`, 360);
  }
  if (h.blockSize !== VDI_BLOCK_SIZE) {
    throw unsupported(`unsupported VDI image (block size ${h.blockSize} is not ${VDI_BLOCK_SIZE})`, 376);
  }
  if (size > h.blocksInImage * h.blockSize) {
    throw unsupported(
      `unsupported VDI image (disk size ${size}, image bitmap has room for ${h.blocksInImage * h.blockSize})`,
      384,
    );
  }
  if (!isNullUuid(h.uuidLink)) throw unsupported("unsupported VDI image (non-NULL link UUID)", 424);
  if (!isNullUuid(h.uuidParent)) throw unsupported("unsupported VDI image (non-NULL parent UUID)", 440);
  if (h.blocksInImage > VDI_BLOCKS_IN_IMAGE_MAX) {
    throw unsupported(`unsupported VDI image (too many blocks ${h.blocksInImage}, max is ${VDI_BLOCKS_IN_IMAGE_MAX})`, 384);
  }
  if (h.blockExtra !== 0) {
    // VirtualBox would put that many bytes before each block's data; QEMU ignores the field and
    // so would read shifted data. Refused rather than read wrong.
    throw unsupported(`unsupported VDI image (${h.blockExtra} bytes of extra data per block)`, 380);
  }
  if (h.imageType !== VdiImageType.dynamic && h.imageType !== VdiImageType.static) {
    throw unsupported(`unsupported VDI image type ${h.imageType} (only dynamic (1) and static (2) images are supported)`, 76);
  }

  // Only the part of the block map the file holds is read: memory stays bounded by the file.
  const bmapBytes = h.blocksInImage * 4;
  const inFile = Math.max(0, Math.min(bmapBytes, fileSize - h.offsetBmap));
  const entries = Math.floor(inFile / 4);
  const bmap = new Uint32Array(entries);
  if (entries > 0) {
    const buf = await readExact(file, h.offsetBmap, entries * 4, "block map", "vdi");
    const bdv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < entries; i++) bmap[i] = bdv.getUint32(i * 4, true);
  }
  let writeBlocker: string | undefined;
  if (entries < h.blocksInImage) {
    writeBlocker = `the block map (${h.blocksInImage} entries at offset ${h.offsetBmap}) extends past the end of the file`;
  } else if (h.offsetBmap < VDI_HEADER_SIZE) {
    writeBlocker = `the block map at offset ${h.offsetBmap} overlaps the header`;
  } else if (h.blocksInImage > 0 && h.offsetBmap + bmapBytes > h.offsetData) {
    writeBlocker = `the block map (${bmapBytes} bytes at offset ${h.offsetBmap}) overlaps the data area at ${h.offsetData}`;
  } else if (h.offsetData < VDI_HEADER_SIZE) {
    writeBlocker = `the data area at offset ${h.offsetData} overlaps the header`;
  }
  return { header: h, size, bmap, writeBlocker };
}

/** The error writes get on an image whose layout is unsafe to write. */
export function vdiWriteBlocked(why: string): CorruptImageError {
  return new CorruptImageError(`Cannot write vdi image: ${why}`, { format: "vdi", structure: "block map" });
}
