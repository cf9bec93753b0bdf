/**
 * cloop (the Linux compressed loopback format, version 2) as QEMU's read-only driver reads it.
 * All integers are big-endian.
 * ```
 * 0                       128          132        136
 * [ shell-script preamble ][block_size ][n_blocks ][ offsets: u64 × (n_blocks + 1) ][ blocks ]
 * block i: zlib stream at [offsets[i], offsets[i+1]) inflating to block_size bytes
 * ```
 * The virtual size is `n_blocks × block_size`.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** The start of the preamble every version 2 image begins with. */
export const CLOOP_MAGIC_V2 = "#!/bin/sh\n#V2.0 Format\n";
/** Bytes of the preamble; the header follows. */
export const CLOOP_PREAMBLE_SIZE = 128;
/** Largest block QEMU accepts (bytes). */
export const CLOOP_MAX_BLOCK_SIZE = 64 << 20;
/** Largest `n_blocks` whose offsets table QEMU can size (u32 arithmetic). */
export const CLOOP_MAX_BLOCKS = Math.floor(0xffffffff / 8);
/** Largest offsets table QEMU reads (bytes). */
export const CLOOP_MAX_OFFSETS_BYTES = 512 << 20;

/** The fixed header after the preamble. */
export const CloopHeaderCodec = defineStruct("cloop header", "be", [
  { name: "blockSize", kind: "u32", at: 0 },
  { name: "blockCount", kind: "u32", at: 4 },
]);

/** File offset of the header and of the offsets table. */
export const CLOOP_HEADER_AT = CLOOP_PREAMBLE_SIZE;
export const CLOOP_OFFSETS_AT = CLOOP_PREAMBLE_SIZE + CloopHeaderCodec.size;
