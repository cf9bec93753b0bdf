/**
 * What `vdisk info` reports about one image (one layer of a chain), with qemu-img's fields.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { BackingReference, SnapshotInfo } from "../core/format.js";

/** One image's description; the CLI prints it as qemu-img `info` does. */
export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  /** Bytes the file occupies on its storage, when known. */
  actualSize?: number;
  clusterSize?: number;
  dirty: boolean;
  encrypted: boolean;
  /** The backing file name as stored. */
  backingFilename?: string;
  /** The backing file name as it is opened (combined with the image's directory). */
  fullBackingFilename?: string;
  backingFormat?: string;
  snapshots: SnapshotInfo[];
  formatSpecific?: { type: string; data: Record<string, unknown> };
}

/** Where the facts {@link imageInfo} cannot learn from the device come from. */
export interface ImageInfoContext {
  /** The image's file name as the user gave it. */
  filename: string;
  actualSize?: number;
  /** The backing file the top image names. */
  backing?: BackingReference;
  /** Turns a stored backing name into the name it is opened under. */
  resolveBacking?: (name: string) => string;
}

/** Describes the top image of `device`. */
export async function imageInfo(device: BlockDevice, ctx: ImageInfoContext): Promise<ImageInfo> {
  const fi = await device.info();
  const info: ImageInfo = {
    filename: ctx.filename,
    format: device.format,
    virtualSize: device.size,
    actualSize: ctx.actualSize,
    clusterSize: fi.clusterSize,
    dirty: !!fi.dirty,
    encrypted: !!fi.encrypted,
    snapshots: fi.snapshots ?? [],
    formatSpecific: fi.formatSpecific,
  };
  if (ctx.backing) {
    info.backingFilename = ctx.backing.name;
    info.fullBackingFilename = ctx.resolveBacking ? ctx.resolveBacking(ctx.backing.name) : ctx.backing.name;
    if (ctx.backing.format) info.backingFormat = ctx.backing.format;
  }
  return info;
}
