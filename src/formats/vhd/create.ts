/**
 * Creating VHDs: fixed, dynamic, and differencing (`create -f vpc -b parent.vhd`, which
 * qemu-img cannot do).
 * @module
 */
import type { CreateContext } from "../../core/format.js";
import { randomUuid } from "../../codec/uuid.js";
import { ImageError } from "../../errors.js";
import { geometrySectors, vhdCreateSize, vhdVirtualSize, type VhdGeometry } from "./geometry.js";
import { readVhdFooter } from "./footer.js";
import {
  VHD_DEFAULT_BLOCK_SIZE,
  VHD_DYNAMIC_COOKIE,
  VHD_DYNAMIC_HEADER_SIZE,
  VHD_EPOCH_UNIX_SECONDS,
  VHD_FEATURES_RESERVED,
  VHD_FOOTER_COOKIE,
  VHD_FOOTER_SIZE,
  VHD_MAX_SECTORS,
  VHD_PARENT_LOCATOR_COUNT,
  VHD_VERSION_1_0,
  VhdDiskType,
  VhdParentLocatorCodec,
  encodeVhdDynamicHeader,
  encodeVhdFooter,
  type VhdFooter,
} from "./layout.js";
import { vhdLocatorsFor } from "./parent.js";
import { encodeUtf16 } from "../../codec/utf16.js";

const MIB = 1 << 20;
/** The creator application vdisk records when the disk is sized by its CHS geometry. */
export const VHD_CREATOR_APP = "vdsk";
/**
 * The creator application recorded when the disk is sized by `currentSize` instead of its
 * geometry. QEMU (and readers following it) size disks with this creator by `currentSize`.
 */
export const VHD_CREATOR_APP_CURRENT_SIZE = "qem2";

function nowVhdSeconds(): number {
  return Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH_UNIX_SECONDS) >>> 0;
}

/** The size and geometry of a new VHD without a parent. */
export interface VhdSizePlan {
  diskType: number;
  size: number;
  geometry: VhdGeometry;
  currentSize: number;
  originalSize: number;
  creatorApp: string;
}

/** Plans a new VHD of `requestedSize` bytes from its create options (size rounded as qemu does). */
export function vhdPlanSize(o: CreateContext["options"], requestedSize: number): VhdSizePlan {
  const azure = o.azure === true;
  const subformat = (o.subformat as string | undefined) ?? (azure ? "fixed" : "dynamic");
  if (azure && subformat !== "fixed") {
    throw new ImageError("ERR_INVALID_OPTION", "azure=on makes a fixed VHD; it cannot be combined with subformat=dynamic");
  }
  let requested = requestedSize;
  if (azure) requested = Math.ceil(requested / MIB) * MIB;
  const force = azure || o.force_size === true;
  const { geometry, size } = vhdCreateSize(requested, force);
  const chsSize = geometrySectors(geometry) * 512;
  return {
    diskType: subformat === "fixed" ? VhdDiskType.fixed : VhdDiskType.dynamic,
    size,
    geometry,
    currentSize: size,
    originalSize: size,
    creatorApp: chsSize === size ? VHD_CREATOR_APP : VHD_CREATOR_APP_CURRENT_SIZE,
  };
}

/** The footer of a disk planned by {@link vhdPlanSize}; `dataOffset` -1 for fixed disks. */
export function vhdMakeFooter(plan: VhdSizePlan, dataOffset: number): VhdFooter {
  return {
    cookie: VHD_FOOTER_COOKIE,
    features: VHD_FEATURES_RESERVED,
    fileFormatVersion: VHD_VERSION_1_0,
    dataOffset,
    timestamp: nowVhdSeconds(),
    creatorApp: plan.creatorApp,
    creatorVersion: 0x00010000,
    creatorHostOs: "Wi2k",
    originalSize: plan.originalSize,
    currentSize: plan.currentSize,
    cylinders: plan.geometry.cylinders,
    heads: plan.geometry.heads,
    sectorsPerTrack: plan.geometry.sectorsPerTrack,
    diskType: plan.diskType,
    checksum: 0,
    uniqueId: randomUuid(),
    savedState: 0,
    reserved: new Uint8Array(427),
  };
}

/** What a differencing disk takes from its parent. */
interface ParentFacts {
  footer: VhdFooter;
  size: number;
}

async function readParent(ctx: CreateContext): Promise<ParentFacts> {
  const b = ctx.backing!;
  const fmt = (b.format ?? "").toLowerCase();
  if (fmt !== "vpc" && fmt !== "vhd") {
    throw new ImageError(
      "ERR_INVALID_OPTION",
      `Cannot create a differencing VHD over '${b.name}': its format is ${b.format ?? "unknown"}, and a VHD's parent must be a VHD`,
    );
  }
  const io = await ctx.openFile({ name: b.name, relativeTo: ctx.file, writable: false, purpose: "backing" });
  try {
    const { footer } = await readVhdFooter(io, await io.size());
    return { footer, size: vhdVirtualSize(footer) };
  } finally {
    await io.close();
  }
}

/** Creates a VHD in `ctx.file` (see the driver's create options). */
export async function createVhd(ctx: CreateContext): Promise<void> {
  let plan: VhdSizePlan;
  let parent: ParentFacts | undefined;
  if (ctx.backing) {
    if (ctx.options.subformat === "fixed" || ctx.options.azure === true) {
      throw new ImageError("ERR_INVALID_OPTION", "A VHD with a parent is a differencing disk; subformat=fixed and azure=on do not apply");
    }
    parent = await readParent(ctx);
    if (ctx.size !== parent.size) {
      throw new ImageError(
        "ERR_INVALID_OPTION",
        `A differencing VHD has the size of its parent (${parent.size} bytes), not ${ctx.size}`,
      );
    }
    const pf = parent.footer;
    const geometry = { cylinders: pf.cylinders, heads: pf.heads, sectorsPerTrack: pf.sectorsPerTrack };
    const chsSize = geometrySectors(geometry) * 512;
    plan = {
      diskType: VhdDiskType.differencing,
      size: parent.size,
      geometry,
      currentSize: pf.currentSize,
      originalSize: pf.currentSize,
      creatorApp: chsSize === parent.size && chsSize !== 65535 * 16 * 255 * 512 ? VHD_CREATOR_APP : VHD_CREATOR_APP_CURRENT_SIZE,
    };
  } else {
    plan = vhdPlanSize(ctx.options, ctx.size);
  }
  if (plan.size / 512 > VHD_MAX_SECTORS) {
    throw new RangeError(`Cannot create vpc image: size of ${plan.size} bytes exceeds the VHD limit of 2040 GiB`);
  }
  if (plan.size !== ctx.size && !ctx.backing) {
    ctx.warn(
      ctx.options.azure === true
        ? `vpc: the size was rounded up from ${ctx.size} to ${plan.size} bytes (Azure needs a whole number of MiB)`
        : ctx.options.force_size === true
          ? `vpc: the size was rounded up from ${ctx.size} to ${plan.size} bytes (a whole number of sectors)`
          : `vpc: the size was rounded up from ${ctx.size} to ${plan.size} bytes to fit a CHS geometry (use -o force_size=on for an exact size)`,
    );
  }
  const file = ctx.file;
  if (plan.diskType === VhdDiskType.fixed) {
    await file.truncate(plan.size);
    await file.write(plan.size, encodeVhdFooter(vhdMakeFooter(plan, -1)));
    await file.flush();
    return;
  }

  const footer = encodeVhdFooter(vhdMakeFooter(plan, VHD_FOOTER_SIZE));
  const bs = VHD_DEFAULT_BLOCK_SIZE;
  const entries = Math.ceil(plan.size / bs);
  // Parent locator data goes before the BAT, so every block lies after all metadata.
  let pos = VHD_FOOTER_SIZE + VHD_DYNAMIC_HEADER_SIZE;
  const locatorEntries = new Uint8Array(24 * VHD_PARENT_LOCATOR_COUNT);
  let parentName: Uint8Array = new Uint8Array(0);
  let parentUniqueId: Uint8Array = new Uint8Array(16);
  let parentTimestamp = 0;
  if (parent && ctx.backing) {
    const locs = vhdLocatorsFor(ctx.backing.name, file.name);
    for (let i = 0; i < locs.length; i++) {
      const space = Math.ceil(locs[i].data.length / 512) * 512;
      VhdParentLocatorCodec.encode(
        {
          platformCode: locs[i].code,
          platformDataSpace: space,
          platformDataLength: locs[i].data.length,
          reserved: 0,
          platformDataOffset: pos,
        },
        locatorEntries,
        i * 24,
      );
      const padded = new Uint8Array(space);
      padded.set(locs[i].data);
      await file.write(pos, padded);
      pos += space;
    }
    parentName = encodeUtf16(ctx.backing.name.slice(0, 256), false);
    parentUniqueId = parent.footer.uniqueId;
    parentTimestamp = parent.footer.timestamp;
  }
  const batOffset = pos;
  const batBytes = Math.ceil((entries * 4) / 512) * 512;
  // Every entry starts unallocated (0xFFFFFFFF); the padding is 0xFF too, as Virtual PC writes it.
  const bat = new Uint8Array(batBytes).fill(0xff);
  await file.write(batOffset, bat);
  const header = encodeVhdDynamicHeader({
    cookie: VHD_DYNAMIC_COOKIE,
    dataOffset: -1,
    tableOffset: batOffset,
    headerVersion: VHD_VERSION_1_0,
    maxTableEntries: entries,
    blockSize: bs,
    checksum: 0,
    parentUniqueId,
    parentTimestamp,
    reserved1: 0,
    parentUnicodeName: parentName,
    parentLocators: locatorEntries,
    reserved2: new Uint8Array(256),
  });
  await file.write(VHD_FOOTER_SIZE, header);
  await file.write(batOffset + batBytes, footer);
  await file.write(0, footer);
  await file.flush();
}
