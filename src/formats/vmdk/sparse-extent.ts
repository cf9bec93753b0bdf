/**
 * A hosted sparse extent ("KDMV"): grain lookup through the directory and tables, grain
 * allocation at the end of the file, zeroed grains, and stream-optimized (compressed) grains.
 * @module
 */
import type { Allocation, Mapping } from "../../core/mapping.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import type { VmdkExtent, VmdkExtentInfo } from "./extent.js";
import { VmdkGrainTables } from "./grain-tables.js";
import { VMDK_EXTENT_MAX_SECTORS, VMDK_GTE_UNALLOCATED, VMDK_GTE_ZEROED, VMDK_SECTOR_SIZE } from "./layout.js";
import type { VmdkSparseGeometry } from "./sparse-header.js";
import { VmdkStreamGrains, vmdkStreamOverwriteError } from "./stream-writer.js";

/** The `special` token of a compressed grain. */
interface CompressedToken {
  readonly host: number;
}

type GteClass = "backing" | "zero" | "data" | "compressed";

/** Options of {@link VmdkSparseExtent}. */
export interface VmdkSparseExtentOptions {
  /** The extent file as opened. */
  file: IoBackend;
  geometry: VmdkSparseGeometry;
  fileSize: number;
  /** The descriptor's type word; empty for a monolithic file. */
  type: string;
  writable: boolean;
}

/** One sparse extent. */
/** Ends the check message of a file that ends inside a grain (a corruption, not a failed check). */
export const VMDK_FILE_TOO_SHORT = ": the file is too short";

export class VmdkSparseExtent implements VmdkExtent {
  readonly file: IoBackend;
  readonly size: number;
  readonly grainSize: number;
  readonly writable: boolean;
  private readonly geo: VmdkSparseGeometry;
  private readonly type: string;
  private tables!: VmdkGrainTables;
  private stream?: VmdkStreamGrains;
  /** Next free byte of the file for new grains and tables. */
  private nextFree: number;

  private constructor(o: VmdkSparseExtentOptions) {
    this.file = o.file;
    this.geo = o.geometry;
    this.size = o.geometry.capacity;
    this.grainSize = o.geometry.grainSize;
    this.type = o.type;
    // Streams whose directory sits at the end cannot grow without moving it.
    this.writable = o.writable && !o.geometry.gdAtEnd;
    const g = this.grainSize;
    this.nextFree = Math.max(Math.ceil(o.fileSize / g) * g, o.geometry.grainOffset);
  }

  /** Opens the extent: loads its grain directories. */
  static async open(o: VmdkSparseExtentOptions): Promise<VmdkSparseExtent> {
    const e = new VmdkSparseExtent(o);
    e.tables = await VmdkGrainTables.load(o.file, o.geometry, o.fileSize);
    if (o.geometry.compressed) {
      e.stream = new VmdkStreamGrains(o.file, e.grainSize, o.geometry.markers, {
        append: (bytes) => e.append(bytes),
        link: (grain, sector) => e.link(grain, [sector]),
      });
    }
    return e;
  }

  info(): VmdkExtentInfo {
    return {
      fileName: this.file.name,
      type: this.type,
      size: this.size,
      grainSize: this.grainSize,
      compressed: this.geo.compressed,
    };
  }

  private classify(gte: number): GteClass {
    if (gte === VMDK_GTE_UNALLOCATED) return "backing";
    if (gte === VMDK_GTE_ZEROED && this.geo.zeroGrain) return "zero";
    return this.geo.compressed ? "compressed" : "data";
  }

  /** The GTE of `grain` (0 when its table does not exist). */
  private async gte(grain: number): Promise<number> {
    const gtes = this.geo.gtesPerGt;
    const t = await this.tables.table(this.gdIndex(grain));
    return t ? t[grain % gtes] : VMDK_GTE_UNALLOCATED;
  }

  private gdIndex(grain: number): number {
    const i = Math.floor(grain / this.geo.gtesPerGt);
    if (i >= this.tables.entries) {
      throw new ImageError("ERR_CORRUPT_IMAGE", `Cannot read vmdk image: grain ${grain} lies past the grain directory`, {
        format: "vmdk",
        structure: "grain directory",
        file: this.file.name,
      });
    }
    return i;
  }

  async getMapping(rel: number, length: number): Promise<Mapping> {
    const g = this.grainSize;
    const gtes = this.geo.gtesPerGt;
    const grain = Math.floor(rel / g);
    const inGrain = rel - grain * g;
    const pending = this.stream?.pendingMapping(grain, inGrain, length);
    if (pending) return pending;
    const gdIndex = this.gdIndex(grain);
    // A mapping never crosses the grain table, the requested length, or a pending grain.
    let end = Math.min(rel + length, (gdIndex + 1) * gtes * g);
    const nextPending = this.stream?.firstPendingAfter(grain);
    if (nextPending !== undefined) end = Math.min(end, Math.max(rel + 1, nextPending * g));
    const table = await this.tables.table(gdIndex);
    if (!table) return { kind: "backing", length: end - rel };
    const first = table[grain % gtes];
    const cls = this.classify(first);
    if (cls === "compressed") {
      const token: CompressedToken = { host: first * VMDK_SECTOR_SIZE };
      return { kind: "special", what: "compressed", fileOffset: token.host, token, length: Math.min(end, (grain + 1) * g) - rel };
    }
    const host = first * VMDK_SECTOR_SIZE;
    let next = grain + 1;
    while (next * g < end) {
      const e = table[next % gtes];
      if (this.classify(e) !== cls) break;
      if (cls === "data" && e !== first + ((next - grain) * g) / VMDK_SECTOR_SIZE) break;
      next++;
    }
    const len = Math.min(end, next * g) - rel;
    if (cls === "backing") return { kind: "backing", length: len };
    if (cls === "zero") return { kind: "zero", length: len, allocated: true };
    // A GTE pointing into the header, descriptor or tables is read as it is, but never written
    // in place: a write relocates the grain instead of overwriting metadata.
    const shared = host < this.geo.grainOffset;
    return { kind: "data", file: this.file, fileOffset: host + inGrain, length: len, ...(shared ? { shared } : {}) };
  }

  private requireWritable(): void {
    if (!this.writable) {
      throw new UnsupportedFeatureError(
        `Cannot write to vmdk extent '${this.file.name}': ${this.geo.gdAtEnd ? "streams with the grain directory at the end cannot be extended" : "the extent is read-only"}`,
        { format: "vmdk", file: this.file.name },
      );
    }
  }

  /** Reserves `bytes` at the end of the file (sector-aligned); refuses past 2^32 sectors. */
  private reserve(bytes: number): number {
    const at = this.nextFree;
    const end = at + Math.ceil(bytes / VMDK_SECTOR_SIZE) * VMDK_SECTOR_SIZE;
    if (end / VMDK_SECTOR_SIZE > VMDK_EXTENT_MAX_SECTORS) {
      throw new ImageError(
        "ERR_IMAGE_FULL",
        `Cannot allocate in vmdk extent '${this.file.name}': the file would pass 2^32 sectors (2 TiB), the most a grain table entry can address`,
        { format: "vmdk", file: this.file.name },
      );
    }
    this.nextFree = end;
    return at;
  }

  private async append(bytes: Uint8Array): Promise<number> {
    const at = this.reserve(bytes.length);
    await this.file.write(at, bytes);
    return at;
  }

  /** Sets the GTEs of grains `first …` (within one grain table) in both tables. */
  private async link(first: number, sectors: number[]): Promise<void> {
    const gtes = this.geo.gtesPerGt;
    await this.tables.setEntries(this.gdIndex(first), first % gtes, sectors, (b) => this.reserve(b));
  }

  async allocate(rel: number, length: number): Promise<Allocation> {
    this.requireWritable();
    const g = this.grainSize;
    const gtes = this.geo.gtesPerGt;
    const grain = Math.floor(rel / g);
    if (this.stream) return this.allocateStreamGrain(grain);
    // Whole grains from here up to the length asked, inside one grain table, that are not
    // allocated data yet.
    const limit = Math.min(Math.ceil(length / g), gtes - (grain % gtes));
    let n = 0;
    while (n < limit) {
      const e = await this.gte(grain + n);
      if (this.classify(e) === "data" && e * VMDK_SECTOR_SIZE >= this.geo.grainOffset) break;
      n++;
    }
    n = Math.max(1, n);
    const host = this.reserve(n * g);
    const mappingLength = Math.min(n * g, this.size - grain * g);
    // The extent's last grain when its size is not a grain multiple: the engine writes only up
    // to the end, but the file must hold the whole grain (qemu writes it whole; libvmdk and
    // 7-Zip reject a file that ends inside a grain).
    if (mappingLength < n * g && (await this.file.size()) < host + n * g) await this.file.truncate(host + n * g);
    return {
      mapping: { kind: "data", file: this.file, fileOffset: host, length: mappingLength },
      commit: async () => {
        const sectors: number[] = [];
        for (let i = 0; i < n; i++) sectors.push((host + i * g) / VMDK_SECTOR_SIZE);
        await this.link(grain, sectors);
      },
    };
  }

  private async allocateStreamGrain(grain: number): Promise<Allocation> {
    const stream = this.stream!;
    const e = await this.gte(grain);
    if (this.classify(e) === "compressed") throw vmdkStreamOverwriteError(this.file.name, grain, this.grainSize);
    const length = Math.min(this.grainSize, this.size - grain * this.grainSize);
    const pending = stream.newPendingGrain(grain, length);
    return {
      mapping: { kind: "data", file: pending, fileOffset: 0, length },
      commit: () => stream.addPending(grain, pending),
    };
  }

  async zeroRange(rel: number, length: number): Promise<number> {
    if (!this.geo.zeroGrain || !this.writable) return 0;
    const g = this.grainSize;
    const gtes = this.geo.gtesPerGt;
    const grain = Math.floor(rel / g);
    // Whole grains only, and the short last grain when the range runs to the extent's end.
    const endGrain = rel + length >= this.size ? Math.ceil(this.size / g) : Math.floor((rel + length) / g);
    const n = Math.min(endGrain - grain, gtes - (grain % gtes));
    let handled = 0;
    const values: number[] = [];
    for (; handled < n; handled++) {
      const e = await this.gte(grain + handled);
      if (this.stream && (this.classify(e) === "compressed" || this.stream.pendingMapping(grain + handled, 0, 1))) break;
      values.push(VMDK_GTE_ZEROED);
    }
    if (handled === 0) return 0;
    await this.link(grain, values);
    return Math.min(length, handled * g);
  }

  async writeCompressed(rel: number, data: Uint8Array): Promise<boolean> {
    if (!this.stream) return false;
    this.requireWritable();
    const grain = Math.floor(rel / this.grainSize);
    const e = await this.gte(grain);
    if (this.classify(e) === "compressed") throw vmdkStreamOverwriteError(this.file.name, grain, this.grainSize);
    this.stream.dropPending(grain);
    await this.stream.writeGrain(grain, data);
    return true;
  }

  async readSpecial(token: unknown, inGrain: number, into: Uint8Array): Promise<void> {
    await this.stream!.read((token as CompressedToken).host, inGrain, into);
  }

  async check(firstSector: number): Promise<string | undefined> {
    const fileSize = await this.file.size();
    const gtes = this.geo.gtesPerGt;
    const grains = Math.ceil(this.size / this.grainSize);
    const grainSectors = this.grainSize / VMDK_SECTOR_SIZE;
    for (let gdIndex = 0; gdIndex * gtes < grains; gdIndex++) {
      const sectorOf = (grain: number) => firstSector + grain * grainSectors;
      if (gdIndex >= this.tables.entries) return `ERROR: could not get cluster_offset for sector ${sectorOf(gdIndex * gtes)}`;
      let table: Uint32Array | undefined;
      try {
        table = await this.tables.table(gdIndex);
      } catch {
        return `ERROR: could not get cluster_offset for sector ${sectorOf(gdIndex * gtes)}`;
      }
      if (!table) continue;
      const last = Math.min(grains, (gdIndex + 1) * gtes);
      for (let grain = gdIndex * gtes; grain < last; grain++) {
        const e = table[grain % gtes];
        const cls = this.classify(e);
        if (cls === "backing" || cls === "zero") continue;
        if (e * VMDK_SECTOR_SIZE >= fileSize) return `ERROR: cluster offset for sector ${sectorOf(grain)} points after EOF`;
        if (cls === "data" && e * VMDK_SECTOR_SIZE + this.grainSize > fileSize) {
          return `ERROR: the grain for sector ${sectorOf(grain)} ends past the end of the file (${fileSize} bytes)${VMDK_FILE_TOO_SHORT}`;
        }
      }
    }
    return undefined;
  }

  /** `beforeFirstFix` runs once, before the first write of the repair (the CID renewal). */
  async repair(beforeFirstFix: () => Promise<void> = async () => {}): Promise<string[]> {
    if (!this.writable) return [];
    const fileSize = await this.file.size();
    const fixes: string[] = [];
    const change = async () => {
      if (fixes.length === 0) await beforeFirstFix();
    };
    const gtes = this.geo.gtesPerGt;
    for (let gdIndex = 0; gdIndex < this.tables.entries; gdIndex++) {
      const sector = this.tables.tableSector(gdIndex);
      const r = this.tables.redundantTableSector(gdIndex);
      const gtEnd = (s: number) => s * VMDK_SECTOR_SIZE + this.tables.gtBytes;
      if ((sector && gtEnd(sector) > fileSize) || (r && gtEnd(r) > fileSize)) continue; // below
      const table = sector ? await this.tables.table(gdIndex) : undefined;
      if (!table) continue;
      for (let i = 0; i < gtes; i++) {
        const e = table[i];
        const cls = this.classify(e);
        if (cls === "backing" || cls === "zero" || e * VMDK_SECTOR_SIZE < fileSize) continue;
        await change();
        await this.tables.setEntries(gdIndex, i, [VMDK_GTE_UNALLOCATED], (b) => this.reserve(b));
        fixes.push(`Repairing: GTE of grain ${gdIndex * gtes + i} points after EOF; the grain is unallocated again`);
      }
    }
    if (this.tables.entries > 0) {
      const probe = await this.tablesPastEof(fileSize);
      if (probe) {
        await change();
        for (const i of await this.tables.dropTablesPastEof(fileSize)) {
          fixes.push(`Repairing: grain table ${i} lies past EOF; its directory entry is cleared`);
        }
      }
    }
    // A file that ends inside a grain in use is extended with zeros (what the tail reads as).
    let need = 0;
    for (let gdIndex = 0; gdIndex < this.tables.entries; gdIndex++) {
      const table = this.tables.tableSector(gdIndex) ? await this.tables.table(gdIndex).catch(() => undefined) : undefined;
      if (!table) continue;
      for (const e of table) {
        const at = e * VMDK_SECTOR_SIZE;
        if (this.classify(e) === "data" && at < fileSize && at + this.grainSize > fileSize) need = Math.max(need, at + this.grainSize);
      }
    }
    if (need > 0) {
      await change();
      await this.file.truncate(need);
      fixes.push(`Repairing: the file is too short; extended from ${fileSize} to ${need} bytes`);
    }
    if (fixes.length > 0) await this.file.flush();
    return fixes;
  }

  private async tablesPastEof(fileSize: number): Promise<boolean> {
    for (let i = 0; i < this.tables.entries; i++) {
      for (const s of [this.tables.tableSector(i), this.tables.redundantTableSector(i)]) {
        if (s && s * VMDK_SECTOR_SIZE + this.tables.gtBytes > fileSize) return true;
      }
    }
    return false;
  }

  async flush(): Promise<void> {
    if (this.stream?.hasPending) await this.stream.writeAllPending();
    if (this.writable) await this.file.flush();
  }
}
