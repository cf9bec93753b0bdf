// The vdisk kernel: hot loops over linear memory, exported with a numbers-and-pointers ABI.
// JavaScript passes absolute addresses of views it got from `alloc`; see src/kernel/wasm-kernel.ts.

import { initArena } from "./arena";
import { initCrc32cTables } from "./crc32c";

export { findNonZero, granuleRunEnd } from "./zero";
export { nextSetBit, nextClearBit } from "./bitmap";
export { tableRunLength } from "./table";
export { crc32c } from "./crc32c";
export { alloc, free, arenaBase, arenaBytes, arenaBytesInUse } from "./arena";

initCrc32cTables();
initArena();
