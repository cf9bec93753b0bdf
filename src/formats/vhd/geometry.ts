/**
 * VHD disk geometry (CHS) and the two ways producers derive a disk's size from a footer.
 *
 * Virtual PC sizes a disk by its CHS geometry (cylinders × heads × sectors per track × 512),
 * which is usually a little smaller than `currentSize`; Hyper-V, Disk2VHD, XenServer and QEMU
 * with `force_size` use `currentSize`. vdisk follows QEMU's rule for choosing between them so
 * both tools see the same disk.
 * @module
 */
import { VHD_MAX_SECTORS, type VhdFooter } from "./layout.js";

/** A CHS geometry as the footer stores it. */
export interface VhdGeometry {
  readonly cylinders: number;
  readonly heads: number;
  readonly sectorsPerTrack: number;
}

/** The largest geometry a footer can hold: 65535 × 16 × 255. */
export const VHD_MAX_GEOMETRY: VhdGeometry = { cylinders: 65535, heads: 16, sectorsPerTrack: 255 };
/** Sectors of {@link VHD_MAX_GEOMETRY}. */
export const VHD_MAX_GEOMETRY_SECTORS = 65535 * 16 * 255;

/** Sectors a geometry addresses. */
export function geometrySectors(g: VhdGeometry): number {
  return g.cylinders * g.heads * g.sectorsPerTrack;
}

/**
 * The geometry the VHD specification assigns to `totalSectors` (Appendix: CHS calculation),
 * with QEMU's extension past 127 GiB (16 heads × 255 sectors). The geometry may address fewer
 * sectors than asked, never more.
 */
export function vhdGeometryFor(totalSectors: number): VhdGeometry {
  const total = Math.min(totalSectors, VHD_MAX_GEOMETRY_SECTORS);
  let spt: number;
  let heads: number;
  let cylTimesHeads: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cylTimesHeads = Math.floor(total / spt);
  } else {
    spt = 17;
    cylTimesHeads = Math.floor(total / spt);
    heads = Math.max(4, Math.ceil(cylTimesHeads / 1024));
    if (cylTimesHeads >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cylTimesHeads = Math.floor(total / spt);
    }
    if (cylTimesHeads >= heads * 1024) {
      spt = 63;
      heads = 16;
      cylTimesHeads = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cylTimesHeads / heads), heads, sectorsPerTrack: spt };
}

/** What `create` records for a requested size. */
export interface VhdCreateSize {
  readonly geometry: VhdGeometry;
  /** The virtual size in bytes (a multiple of 512). */
  readonly size: number;
}

/**
 * The size and geometry `qemu-img create -f vpc` records for `requested` bytes: rounded up to
 * a sector, then (unless `forceSize`) up to the smallest CHS geometry that holds it. With
 * `forceSize`, or when the size needs the maximum geometry, the geometry is the maximum and the
 * size is the requested one. Throws `RangeError` past 2040 GiB.
 */
export function vhdCreateSize(requested: number, forceSize: boolean): VhdCreateSize {
  const sectorsWanted = Math.ceil(requested / 512);
  let geometry: VhdGeometry = { cylinders: 0, heads: 0, sectorsPerTrack: 0 };
  if (forceSize) {
    geometry = VHD_MAX_GEOMETRY;
  } else {
    const total = Math.min(VHD_MAX_GEOMETRY_SECTORS, sectorsWanted);
    // Each step moves the geometry by at most heads × sectors (≤ 4080) sectors.
    for (let i = 0; total > geometrySectors(geometry); i++) geometry = vhdGeometryFor(total + i);
  }
  let sectors: number;
  if (geometrySectors(geometry) === VHD_MAX_GEOMETRY_SECTORS) {
    sectors = sectorsWanted;
    if (sectors > VHD_MAX_SECTORS) {
      throw new RangeError(`Cannot create vpc image: size of ${requested} bytes exceeds the VHD limit of 2040 GiB`);
    }
  } else {
    sectors = geometrySectors(geometry);
  }
  return { geometry, size: sectors * 512 };
}

/** How the virtual size is taken from a footer (QEMU's `force_size_calc` open option). */
export type VhdSizeCalc = "auto" | "chs" | "current_size";

/** Creator applications whose disks are sized by `currentSize` (QEMU's list). */
const CURRENT_SIZE_CREATORS = new Set(["win ", "qem2", "d2v ", "CTXS", "tap\0"]);

/**
 * The virtual size of a disk with this footer, in bytes: CHS geometry for Virtual PC and other
 * creators, `currentSize` (rounded down to a sector) for the creators listed above, when the
 * geometry is the maximum, or when `mode` says so.
 */
export function vhdVirtualSize(footer: VhdFooter, mode: VhdSizeCalc = "auto"): number {
  return vhdSizeSource(footer, mode) === "chs"
    ? footer.cylinders * footer.heads * footer.sectorsPerTrack * 512
    : Math.floor(footer.currentSize / 512) * 512;
}

/** Which footer field {@link vhdVirtualSize} takes the size from. */
export function vhdSizeSource(footer: VhdFooter, mode: VhdSizeCalc = "auto"): "chs" | "current-size" {
  const chs = footer.cylinders * footer.heads * footer.sectorsPerTrack;
  const useChs = mode === "chs" || (mode === "auto" && !CURRENT_SIZE_CREATORS.has(footer.creatorApp));
  return !useChs || chs === VHD_MAX_GEOMETRY_SECTORS ? "current-size" : "chs";
}
