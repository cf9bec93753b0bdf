/**
 * The grain directory, its redundant copy and the grain tables of one sparse extent: loading
 * (bounded by the file), a small cache of grain tables, and GTE updates written to both copies.
 * @module
 */
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { VMDK_SECTOR_SIZE } from "./layout.js";
import type { VmdkSparseGeometry } from "./sparse-header.js";

/** Grain tables kept in memory per extent (2 KiB each for 512-entry tables). */
const GT_CACHE_LIMIT = 4096;

function readU32Array(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(bytes.length / 4);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(i * 4, true);
  return out;
}

function encodeU32s(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setUint32(i * 4, values[i], true);
  return out;
}

/** Reserves `bytes` of new host space at the end of the extent file; returns its offset. */
export type VmdkHostReserver = (bytes: number) => number;

/** The directory and tables of one sparse extent. */
export class VmdkGrainTables {
  private readonly cache = new Map<number, Uint32Array>();
  /** Bytes of one grain table. */
  readonly gtBytes: number;

  private constructor(
    private readonly file: IoBackend,
    private readonly geo: VmdkSparseGeometry,
    private readonly gd: Uint32Array,
    private readonly rgd: Uint32Array | undefined,
  ) {
    this.gtBytes = geo.gtesPerGt * 4;
  }

  /**
   * Reads both directories. Each must lie inside the file (checked before anything is
   * allocated), so their size is bounded by the file's.
   */
  static async load(file: IoBackend, geo: VmdkSparseGeometry, fileSize: number): Promise<VmdkGrainTables> {
    const bytes = geo.gdEntries * 4;
    const read = async (offset: number, what: string): Promise<Uint32Array> => {
      if (bytes === 0) return new Uint32Array(0);
      if (offset + bytes > fileSize) {
        throw new CorruptImageError(
          `Cannot open vmdk image: ${what} at offset ${offset} (${bytes} bytes) extends past the end of the file (${fileSize} bytes)`,
          { format: "vmdk", structure: what, fileOffset: offset },
        );
      }
      return readU32Array(await readExact(file, offset, bytes, what, "vmdk"));
    };
    const gd = await read(geo.gdOffset, "grain directory");
    const rgd = geo.rgdOffset ? await read(geo.rgdOffset, "redundant grain directory") : undefined;
    return new VmdkGrainTables(file, geo, gd, rgd);
  }

  /** Number of directory entries. */
  get entries(): number {
    return this.gd.length;
  }

  /** The sector of grain table `gdIndex` (0 = none). */
  tableSector(gdIndex: number): number {
    return this.gd[gdIndex];
  }

  /** The sector of the redundant copy of grain table `gdIndex` (0 = none or no redundant directory). */
  redundantTableSector(gdIndex: number): number {
    return this.rgd ? this.rgd[gdIndex] ?? 0 : 0;
  }

  /**
   * Grain table `gdIndex`, or undefined when the directory has none. The returned array is the
   * cached copy: callers must not modify it. Throws {@link CorruptImageError} when the table
   * lies past the end of the file.
   */
  async table(gdIndex: number): Promise<Uint32Array | undefined> {
    const hit = this.cache.get(gdIndex);
    if (hit) {
      // Refresh its place in the LRU order.
      this.cache.delete(gdIndex);
      this.cache.set(gdIndex, hit);
      return hit;
    }
    const sector = this.gd[gdIndex];
    if (!sector) return undefined;
    const t = readU32Array(await readExact(this.file, sector * VMDK_SECTOR_SIZE, this.gtBytes, "grain table", "vmdk"));
    this.remember(gdIndex, t);
    return t;
  }

  private remember(gdIndex: number, t: Uint32Array): void {
    this.cache.set(gdIndex, t);
    if (this.cache.size > GT_CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as number);
  }

  /**
   * Sets GTEs `first … first+values.length-1` of table `gdIndex` in the table and in its
   * redundant copy. When the directory has no table there yet, new tables are written first
   * (space from `reserve`), then the directory entries, so a crash never leaves a directory
   * entry pointing at an unwritten table.
   */
  async setEntries(gdIndex: number, first: number, values: ArrayLike<number>, reserve: VmdkHostReserver): Promise<void> {
    const data = encodeU32s(values);
    const current = await this.table(gdIndex);
    if (!current) {
      await this.createTables(gdIndex, first, values, reserve);
      return;
    }
    await this.file.write(this.gd[gdIndex] * VMDK_SECTOR_SIZE + first * 4, data);
    const r = this.redundantTableSector(gdIndex);
    if (r) await this.file.write(r * VMDK_SECTOR_SIZE + first * 4, data);
    const t = current.slice();
    t.set(Array.from(values), first);
    this.remember(gdIndex, t);
  }

  /**
   * `check -r all`: clears the directory entries (both directories) whose grain table, or its
   * redundant copy, extends past `fileSize`. Returns the directory indexes cleared.
   */
  async dropTablesPastEof(fileSize: number): Promise<number[]> {
    const dropped: number[] = [];
    const past = (sector: number) => sector !== 0 && sector * VMDK_SECTOR_SIZE + this.gtBytes > fileSize;
    for (let i = 0; i < this.gd.length; i++) {
      if (!past(this.gd[i]) && !past(this.redundantTableSector(i))) continue;
      await this.file.write(this.geo.gdOffset + i * 4, encodeU32s([0]));
      this.gd[i] = 0;
      if (this.rgd && this.geo.rgdOffset) {
        await this.file.write(this.geo.rgdOffset + i * 4, encodeU32s([0]));
        this.rgd[i] = 0;
      }
      this.cache.delete(i);
      dropped.push(i);
    }
    return dropped;
  }

  private async createTables(gdIndex: number, first: number, values: ArrayLike<number>, reserve: VmdkHostReserver): Promise<void> {
    const t = new Uint32Array(this.geo.gtesPerGt);
    t.set(Array.from(values), first);
    const bytes = Math.ceil(this.gtBytes / VMDK_SECTOR_SIZE) * VMDK_SECTOR_SIZE;
    const padded = new Uint8Array(bytes);
    padded.set(encodeU32s(t));
    const main = reserve(bytes);
    await this.file.write(main, padded);
    let redundant = 0;
    if (this.rgd) {
      redundant = reserve(bytes);
      await this.file.write(redundant, padded);
    }
    // The tables are on stable storage before a directory entry points at them (one flush per
    // new table): a volatile disk cache could otherwise keep the entry and lose a table.
    await this.file.flush();
    await this.file.write(this.geo.gdOffset + gdIndex * 4, encodeU32s([main / VMDK_SECTOR_SIZE]));
    this.gd[gdIndex] = main / VMDK_SECTOR_SIZE;
    if (this.rgd) {
      await this.file.write(this.geo.rgdOffset + gdIndex * 4, encodeU32s([redundant / VMDK_SECTOR_SIZE]));
      this.rgd[gdIndex] = redundant / VMDK_SECTOR_SIZE;
    }
    this.remember(gdIndex, t);
  }
}
