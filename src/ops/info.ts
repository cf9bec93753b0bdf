/**
 * What `vdisk info` reports about one image (one layer of a chain), with qemu-img's fields:
 * {@link describeImage} gives the facts, {@link imageInfo} the `qemu-img info --output=json`
 * object (with `backing-image` for a chain).
 * @module
 */
import { throwIfAborted } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import type { BackingReference, SnapshotInfo } from "../core/format.js";

/** A JSON value as qemu-img prints it. `undefined` members are left out. */
export type QJson = string | number | boolean | null | QJson[] | { [key: string]: QJson | undefined };

/** One image's description; the CLI prints it as qemu-img `info` does. */
export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  /** Bytes the file occupies on its storage, when known. */
  actualSize?: number;
  clusterSize?: number;
  /** Absent where the format has no dirty flag (qemu-img shows none). */
  dirty?: boolean;
  encrypted: boolean;
  /** The backing file name as stored. */
  backingFilename?: string;
  /** The backing file name as it is opened (combined with the image's directory). */
  fullBackingFilename?: string;
  backingFormat?: string;
  snapshots: SnapshotInfo[];
  formatSpecific?: { type: string; data: Record<string, unknown> };
}

/** Where the facts {@link describeImage} cannot learn from the device come from. */
export interface ImageInfoContext {
  /** The image's file name as the user gave it. */
  filename: string;
  actualSize?: number;
  /** The backing file the top image names. Default: the device's `backingFile`. */
  backing?: BackingReference;
  /** Turns a stored backing name into the name it is opened under. */
  resolveBacking?: (name: string) => string;
}

/** Describes the top image of `device`. */
export async function describeImage(device: BlockDevice, ctx: ImageInfoContext): Promise<ImageInfo> {
  const fi = await device.info();
  const info: ImageInfo = {
    filename: ctx.filename,
    format: device.format,
    // qemu counts the guest disk in whole 512-byte sectors: a 1234-byte disk shows as 1536.
    virtualSize: Math.ceil(device.size / 512) * 512,
    actualSize: ctx.actualSize,
    clusterSize: fi.clusterSize,
    dirty: fi.noDirtyFlag ? undefined : !!fi.dirty,
    encrypted: !!fi.encrypted,
    snapshots: fi.snapshots ?? [],
    formatSpecific: fi.formatSpecific,
  };
  const backing = ctx.backing ?? device.backingFile;
  if (backing) {
    info.backingFilename = backing.name;
    info.fullBackingFilename = ctx.resolveBacking ? ctx.resolveBacking(backing.name) : backing.name;
    if (backing.format) info.backingFormat = backing.format;
  }
  return info;
}

/** Options of {@link imageInfo}. */
export interface ImageInfoOptions {
  /** The name shown as `filename`. Default: the device's `name`. */
  filename?: string;
  /** Bytes the file occupies (`actual-size`), when the caller knows. */
  actualSize?: number;
  /** Turns a stored backing name into the name it is opened under (`full-backing-filename`). */
  resolveBacking?: (name: string) => string;
  /**
   * Describe the opened backing chain too, nested as `backing-image` (qemu-img's JSON for
   * `info --backing-chain` of one image). Default true.
   */
  backingChain?: boolean;
  signal?: AbortSignal;
}

/**
 * The `qemu-img info --output=json` object of `device`'s top image: qemu-img's field names
 * (`virtual-size`, `cluster-size`, `format-specific`, …), and for an opened chain the backing
 * image's object as `backing-image`.
 */
export async function imageInfo(device: BlockDevice, options: ImageInfoOptions = {}): Promise<Record<string, QJson | undefined>> {
  throwIfAborted(options.signal);
  const facts = await describeImage(device, {
    filename: options.filename ?? device.name ?? "",
    actualSize: options.actualSize,
    resolveBacking: options.resolveBacking,
  });
  const json = infoJson(facts) as Record<string, QJson | undefined>;
  if ((options.backingChain ?? true) && device.backing) {
    const fullName = facts.fullBackingFilename;
    json["backing-image"] = await imageInfo(device.backing, {
      ...options,
      filename: fullName ?? device.backing.name,
      actualSize: undefined,
    });
  }
  return json;
}

/** Converts a driver's `format-specific` data (plain JSON-like values) into printable JSON. */
export function toQJson(v: unknown): QJson | undefined {
  if (v === null) return null;
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "bigint":
      return Number(v);
    case "object": {
      if (Array.isArray(v)) return v.map((x) => toQJson(x) ?? null);
      const out: { [k: string]: QJson | undefined } = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = toQJson(x);
      return out;
    }
    default:
      return undefined;
  }
}

function snapshotJson(s: SnapshotInfo): QJson {
  return {
    id: s.id,
    name: s.name,
    "vm-state-size": s.vmStateSize,
    "date-sec": s.dateSec,
    "date-nsec": s.dateNsec,
    "vm-clock-sec": Math.floor(s.vmClockNsec / 1e9),
    "vm-clock-nsec": s.vmClockNsec % 1e9,
    icount: s.icount,
  };
}

/** The `qemu-img info --output=json` object of one image. */
export function infoJson(info: ImageInfo): QJson {
  return {
    filename: info.filename,
    format: info.format,
    "dirty-flag": info.dirty,
    "actual-size": info.actualSize,
    "virtual-size": info.virtualSize,
    "cluster-size": info.clusterSize,
    encrypted: info.encrypted ? true : undefined,
    "backing-filename": info.backingFilename,
    "full-backing-filename": info.fullBackingFilename,
    "backing-filename-format": info.backingFormat,
    snapshots: info.snapshots.length > 0 ? info.snapshots.map(snapshotJson) : undefined,
    "format-specific": info.formatSpecific
      ? { type: info.formatSpecific.type, data: toQJson(info.formatSpecific.data) ?? {} }
      : undefined,
  };
}


