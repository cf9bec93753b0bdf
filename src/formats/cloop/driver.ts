/**
 * The cloop driver (read-only): probing, validation of the header and the offsets table with
 * qemu's checks and wording, and the open instance.
 * @module
 */
import type { FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { CorruptImageError } from "../../errors.js";
import { readExact } from "../../io/helpers.js";
import { CloopInstance } from "./instance.js";
import {
  CLOOP_HEADER_AT,
  CLOOP_MAGIC_V2,
  CLOOP_MAX_BLOCKS,
  CLOOP_MAX_BLOCK_SIZE,
  CLOOP_MAX_OFFSETS_BYTES,
  CLOOP_OFFSETS_AT,
  CloopHeaderCodec,
} from "./layout.js";

const MAGIC = new TextEncoder().encode(CLOOP_MAGIC_V2);

/** Matches the preamble as qemu does; scores low, so a real header of another format wins. */
function probeCloop(input: ProbeInput): number {
  if (input.head.length < MAGIC.length) return 0;
  for (let i = 0; i < MAGIC.length; i++) if (input.head[i] !== MAGIC[i]) return 0;
  return 2;
}

function corrupt(message: string, structure: string, fileOffset: number): CorruptImageError {
  return new CorruptImageError(message, { format: "cloop", structure, fileOffset });
}

async function openCloop(ctx: OpenContext): Promise<FormatInstance> {
  const file = ctx.file;
  const h = CloopHeaderCodec.decode(await readExact(file, CLOOP_HEADER_AT, CloopHeaderCodec.size, "header", "cloop"));
  const { blockSize, blockCount } = h;
  if (blockSize % 512 !== 0) throw corrupt(`block_size ${blockSize} must be a multiple of 512`, "header", CLOOP_HEADER_AT);
  if (blockSize === 0) throw corrupt("block_size cannot be zero", "header", CLOOP_HEADER_AT);
  if (blockSize > CLOOP_MAX_BLOCK_SIZE) {
    throw corrupt(`block_size ${blockSize} must be ${CLOOP_MAX_BLOCK_SIZE >> 20} MB or less`, "header", CLOOP_HEADER_AT);
  }
  if (blockCount > CLOOP_MAX_BLOCKS - 1) {
    throw corrupt(`n_blocks ${blockCount} must be ${CLOOP_MAX_BLOCKS} or less`, "header", CLOOP_HEADER_AT + 4);
  }
  const tableBytes = (blockCount + 1) * 8;
  if (tableBytes > CLOOP_MAX_OFFSETS_BYTES) {
    throw corrupt("image requires too many offsets, try increasing block size", "header", CLOOP_HEADER_AT + 4);
  }
  const raw = await readExact(file, CLOOP_OFFSETS_AT, tableBytes, "offsets table", "cloop");
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  // Offsets as numbers: a value past 2^53 can only be corrupt (no file is that large).
  const offsets = new Float64Array(blockCount + 1);
  let largest = 0;
  for (let i = 0; i <= blockCount; i++) {
    offsets[i] = view.getUint32(i * 8) * 2 ** 32 + view.getUint32(i * 8 + 4);
    if (i === 0) continue;
    const at = CLOOP_OFFSETS_AT + i * 8;
    if (offsets[i] < offsets[i - 1]) {
      throw corrupt(`offsets not monotonically increasing at index ${i}, image file is corrupt`, "offsets table", at);
    }
    const compressed = offsets[i] - offsets[i - 1];
    if (compressed > 2 * CLOOP_MAX_BLOCK_SIZE || !Number.isSafeInteger(offsets[i])) {
      throw corrupt(`invalid compressed block size at index ${i}, image file is corrupt`, "offsets table", at);
    }
    largest = Math.max(largest, compressed);
  }
  return new CloopInstance({ file, blockSize, blockCount, offsets, largestCompressed: largest });
}

/** cloop v2 images (read-only, as in qemu-img). */
export const cloopDriver: FormatDriver = {
  name: "cloop",
  createOptions: [],
  probe: probeCloop,
  open: openCloop,
};
