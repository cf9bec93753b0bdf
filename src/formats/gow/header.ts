/**
 * Reading and validating the GOW header and map: the structural checks shared by open, probe
 * and check.
 * @module
 */
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { GOW_FREE, GOW_MAP_OFFSET, GowHeaderCodec, type GowHeader, type GowVersionLayout } from "./layout.js";

/** Typed arrays use the host's byte order; on little-endian hosts the map decodes by copying. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Map bytes read per I/O (keeps temporary buffers small). */
const MAP_PIECE = 1 << 20;

/** Decodes the 12 fixed header bytes of `head` (which must hold them). */
export function decodeGowHeader(head: Uint8Array): GowHeader {
  return GowHeaderCodec.decode(head);
}

/**
 * The first structural problem of the fixed header for `layout`, or undefined. `allocated` may
 * exceed `size` only for the project's own images (a shrink never lowers it, spec §4), so a
 * foreign magic must also satisfy the seed's `allocated <= size`.
 */
export function gowHeaderProblem(h: GowHeader, layout: GowVersionLayout, fileSize: number, foreign: boolean): string | undefined {
  if (h.size < 1 || h.size > layout.maxBlocks) {
    return `disk size of ${h.size} blocks is outside 1..${layout.maxBlocks}`;
  }
  if (h.allocated > layout.maxBlocks) return `allocated count ${h.allocated} exceeds the ${layout.maxBlocks} slots a ${layout.name} image can have`;
  if (foreign && h.allocated > h.size) return `allocated count ${h.allocated} exceeds the disk size of ${h.size} blocks`;
  if (fileSize < layout.headerBytes) {
    return `the file of ${fileSize} bytes is shorter than the ${layout.headerBytes}-byte header`;
  }
  return undefined;
}

/** Reads `count` map entries starting at entry `first` (little-endian u32). */
export async function readGowMap(io: IoBackend, first: number, count: number, name: string): Promise<Uint32Array> {
  const map = new Uint32Array(count);
  for (let i = 0; i < count; ) {
    const n = Math.min(count - i, MAP_PIECE / 4);
    const bytes = await readExact(io, GOW_MAP_OFFSET + 4 * (first + i), 4 * n, "map", name);
    if (LITTLE_ENDIAN_HOST) {
      map.set(new Uint32Array(bytes.buffer, bytes.byteOffset, n), i);
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let k = 0; k < n; k++) map[i + k] = view.getUint32(4 * k, true);
    }
    i += n;
  }
  return map;
}

/** Encodes map entries as little-endian bytes. */
export function encodeGowMap(entries: Uint32Array): Uint8Array {
  const out = new Uint8Array(entries.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < entries.length; i++) view.setUint32(4 * i, entries[i], true);
  return out;
}

/**
 * The first map problem among `map` (entries of blocks `0..map.length-1`): an entry at or past
 * `allocated`, or a slot used twice. Undefined when the map is consistent.
 */
export function gowMapProblem(map: Uint32Array, allocated: number): string | undefined {
  const used = new Uint8Array(Math.ceil(allocated / 8));
  for (let b = 0; b < map.length; b++) {
    const slot = map[b];
    if (slot === GOW_FREE) continue;
    if (slot >= allocated) return `map entry of block ${b} holds slot ${slot}, but only ${allocated} slots are allocated`;
    const bit = 1 << (slot & 7);
    if (used[slot >>> 3] & bit) return `slot ${slot} is used by more than one block (again by block ${b})`;
    used[slot >>> 3] |= bit;
  }
  return undefined;
}
