/**
 * Creating a GOW image (spec §4 "Create"): size only. Refuses a backing file, encryption, a size
 * below one block or above MAXBLOCKS blocks; rounds the size up to whole blocks [decision].
 * @module
 */
import type { CreateContext } from "../../core/format.js";
import { ImageError, UnsupportedFeatureError, formatBytes } from "../../errors.js";
import { GOW_BLOCK_SIZE, GOW_MAP_OFFSET, GowHeaderCodec, type GowVersionLayout } from "./layout.js";

/** Bytes of FREE entries written per I/O. */
const PIECE = 1 << 20;

/** Writes a new, empty GOW image of `layout`'s version into `ctx.file`. */
export async function createGowImage(ctx: CreateContext, layout: GowVersionLayout): Promise<void> {
  const name = layout.name;
  if (ctx.backing) {
    throw new UnsupportedFeatureError(`Cannot create ${name} image: the format has no backing files`, { format: name });
  }
  if (ctx.options.encryption === true) {
    throw new UnsupportedFeatureError(`Cannot create ${name} image: the format has no encryption`, { format: name });
  }
  if (ctx.size < GOW_BLOCK_SIZE) {
    throw new ImageError("ERR_OUT_OF_RANGE", `Cannot create ${name} image: a size of ${formatBytes(ctx.size)} is below one 64 KiB block`, {
      format: name,
    });
  }
  const blocks = Math.ceil(ctx.size / GOW_BLOCK_SIZE);
  if (blocks > layout.maxBlocks) {
    throw new ImageError(
      "ERR_OUT_OF_RANGE",
      `Cannot create ${name} image: a size of ${formatBytes(ctx.size)} exceeds the largest ${name} disk of ${formatBytes(layout.maxBlocks * GOW_BLOCK_SIZE)}`,
      { format: name },
    );
  }
  if (blocks * GOW_BLOCK_SIZE !== ctx.size) {
    ctx.warn(`${name}: size rounded up to ${blocks} blocks of 64 KiB (${formatBytes(blocks * GOW_BLOCK_SIZE)})`);
  }
  const file = ctx.file;
  await file.truncate(0);
  await file.write(0, GowHeaderCodec.encode({ magic: layout.magic, size: blocks, allocated: 0 }));
  const free = new Uint8Array(PIECE).fill(0xff);
  const mapBytes = 4 * layout.maxBlocks;
  for (let pos = 0; pos < mapBytes; pos += PIECE) {
    await file.write(GOW_MAP_OFFSET + pos, free.subarray(0, Math.min(PIECE, mapBytes - pos)));
  }
  if (layout.dataBase > layout.headerBytes) {
    await file.write(layout.headerBytes, new Uint8Array(layout.dataBase - layout.headerBytes));
  }
  await file.flush();
}
