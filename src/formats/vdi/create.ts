/**
 * Creating VDI images (dynamic, or static with `-o static=on`), as `qemu-img create -f vdi`.
 * @module
 */
import type { CreateContext } from "../../core/format.js";
import { randomUuid } from "../../codec/uuid.js";
import { ImageError } from "../../errors.js";
import {
  VDI_BLOCK_SIZE,
  VDI_DISK_SIZE_MAX,
  VDI_HEADER_SIZE,
  VDI_HEADER_SIZE_1_1,
  VDI_SECTOR_SIZE,
  VDI_SIGNATURE,
  VDI_TEXT,
  VDI_UNALLOCATED,
  VDI_VERSION_1_1,
  VdiHeaderCodec,
  VdiImageType,
} from "./layout.js";

/** Block map entries written per chunk (1 MiB of map). */
const BMAP_CHUNK_ENTRIES = 1 << 18;

/** Creates a VDI in `ctx.file`. */
export async function createVdi(ctx: CreateContext): Promise<void> {
  // qemu-img rounds every size up to a whole sector before the driver sees it.
  const size = Math.ceil(ctx.size / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
  if (size > VDI_DISK_SIZE_MAX) {
    throw new ImageError(
      "ERR_INVALID_OPTION",
      `Unsupported VDI image size (size is 0x${size.toString(16)}, max supported is 0x${VDI_DISK_SIZE_MAX.toString(16)})`,
    );
  }
  const isStatic = ctx.options.static === true;
  const bs = VDI_BLOCK_SIZE;
  const blocks = Math.ceil(size / bs);
  const bmapBytes = Math.ceil((blocks * 4) / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
  const offsetBmap = VDI_HEADER_SIZE;
  const offsetData = offsetBmap + bmapBytes;
  const header = VdiHeaderCodec.encode({
    text: VDI_TEXT,
    signature: VDI_SIGNATURE,
    version: VDI_VERSION_1_1,
    headerSize: VDI_HEADER_SIZE_1_1,
    imageType: isStatic ? VdiImageType.static : VdiImageType.dynamic,
    imageFlags: 0,
    description: new Uint8Array(256),
    offsetBmap,
    offsetData,
    cylinders: 0,
    heads: 0,
    sectors: 0,
    sectorSize: VDI_SECTOR_SIZE,
    unused1: 0,
    diskSize: size,
    blockSize: bs,
    blockExtra: 0,
    blocksInImage: blocks,
    blocksAllocated: isStatic ? blocks : 0,
    uuidImage: randomUuid(),
    uuidLastSnap: randomUuid(),
    uuidLink: new Uint8Array(16),
    uuidParent: new Uint8Array(16),
    lchsCylinders: 0,
    lchsHeads: 0,
    lchsSectors: 0,
    lchsSectorSize: 0,
    reserved: new Uint8Array(40),
  });
  const file = ctx.file;
  if (isStatic) await file.truncate(offsetData + blocks * bs);
  for (let first = 0; first < blocks; first += BMAP_CHUNK_ENTRIES) {
    const n = Math.min(BMAP_CHUNK_ENTRIES, blocks - first);
    const chunk = new Uint8Array(n * 4);
    const dv = new DataView(chunk.buffer);
    for (let i = 0; i < n; i++) dv.setUint32(i * 4, isStatic ? first + i : VDI_UNALLOCATED, true);
    await file.write(offsetBmap + first * 4, chunk);
  }
  // The padding after the last entry stays zero, as QEMU leaves it.
  if (bmapBytes > blocks * 4) await file.write(offsetBmap + blocks * 4, new Uint8Array(bmapBytes - blocks * 4));
  await file.write(0, header);
  await file.flush();
}
