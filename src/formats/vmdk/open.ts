/**
 * Opening a VMDK: a monolithic sparse file (descriptor embedded), or a text descriptor whose
 * extents are opened through the open policy (purpose `extent`), plus the parent (backing)
 * named by `parentFileNameHint` and a warning when the parent's CID no longer matches.
 * @module
 */
import type { OpenContext } from "../../core/format.js";
import { CorruptImageError, ImageError, LimitExceededError, UnsupportedFeatureError, isImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { parseVmdkDescriptor, vmdkDescriptorText, type VmdkDescriptor } from "./descriptor.js";
import type { VmdkExtent } from "./extent.js";
import { VmdkFlatExtent, VmdkZeroExtent } from "./flat-extent.js";
import { VmdkInstance, type VmdkDescriptorPlace, type VmdkState } from "./instance.js";
import {
  VMDK_DEFAULT_DESCRIPTOR_SECTORS,
  VMDK_DESCRIPTOR_MAX,
  VMDK_SECTOR_SIZE,
  VMDK_SPARSE_MAGIC,
  VmdkExtentType,
  VmdkSparseHeaderCodec,
} from "./layout.js";
import { readVmdkSparseHeader } from "./sparse-header.js";
import { VmdkSparseExtent } from "./sparse-extent.js";
import { VmdkWriteHookBackend } from "./write-hook.js";

/** The CID that means "no parent". */
const NO_PARENT_CID = 0xffffffff;

/** Reads a little-endian u64 of the sparse header without decoding the whole sector. */
function headerU64(head: Uint8Array, field: "capacity" | "descriptorOffset" | "descriptorSize"): number {
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const o = VmdkSparseHeaderCodec.offsetOf(field);
  const hi = dv.getUint32(o + 4, true);
  return hi > 0x1fffff ? Infinity : hi * 2 ** 32 + dv.getUint32(o, true);
}

/**
 * The descriptor embedded in a sparse file, or undefined when it has none. Its size is bounded
 * by {@link VMDK_DESCRIPTOR_MAX} and the file.
 */
async function readEmbeddedDescriptor(
  file: IoBackend,
  fileSize: number,
  head: Uint8Array,
): Promise<{ descriptor: VmdkDescriptor; place: VmdkDescriptorPlace } | undefined> {
  const offsetSectors = headerU64(head, "descriptorOffset");
  if (offsetSectors === 0) return undefined;
  const offset = offsetSectors * VMDK_SECTOR_SIZE;
  if (!(offset < fileSize)) {
    throw new CorruptImageError(`Cannot open vmdk image: the descriptor offset ${offset} lies past the end of the file`, {
      format: "vmdk",
      structure: "descriptor",
    });
  }
  const sizeSectors = headerU64(head, "descriptorSize") || VMDK_DEFAULT_DESCRIPTOR_SECTORS;
  const capacity = Math.min(sizeSectors * VMDK_SECTOR_SIZE, VMDK_DESCRIPTOR_MAX, fileSize - offset);
  const bytes = await readExact(file, offset, capacity, "descriptor", "vmdk");
  const descriptor = parseVmdkDescriptor(vmdkDescriptorText(bytes));
  return { descriptor, place: { kind: "embedded", offset, capacity } };
}

/** Reads the text descriptor that makes up the whole of `file`. */
async function readDescriptorFile(file: IoBackend, fileSize: number): Promise<VmdkDescriptor> {
  if (fileSize > VMDK_DESCRIPTOR_MAX) {
    throw new LimitExceededError(
      `Cannot open vmdk image: a descriptor file of ${fileSize} bytes exceeds the limit of ${VMDK_DESCRIPTOR_MAX}`,
      { format: "vmdk", structure: "descriptor" },
    );
  }
  return parseVmdkDescriptor(vmdkDescriptorText(await readExact(file, 0, fileSize, "descriptor", "vmdk")));
}

/** Opens the extents a text descriptor lists; on failure every file opened so far is closed. */
async function openDescriptorExtents(
  ctx: OpenContext,
  d: VmdkDescriptor,
  beforeChange: () => Promise<void>,
  opened: IoBackend[],
): Promise<VmdkExtent[]> {
  const extents: VmdkExtent[] = [];
  for (const line of d.extents) {
    if (line.access === "NOACCESS") {
      throw new UnsupportedFeatureError(`Cannot open vmdk image: NOACCESS extents cannot be read (${line.text.trim()})`, {
        format: "vmdk",
        structure: "descriptor",
      });
    }
    const type = line.type;
    if (type === VmdkExtentType.zero) {
      extents.push(new VmdkZeroExtent(line.sectors * VMDK_SECTOR_SIZE));
      continue;
    }
    if (type !== VmdkExtentType.flat && type !== VmdkExtentType.vmfs && type !== VmdkExtentType.sparse) {
      throw new UnsupportedFeatureError(`Cannot open vmdk image: Unsupported extent type '${type}'`, {
        format: "vmdk",
        structure: "descriptor",
      });
    }
    const writable = !ctx.readOnly && line.access === "RW";
    const file = await ctx.openFile({ name: line.fileName!, relativeTo: ctx.file, writable, purpose: "extent" });
    opened.push(file);
    const view = new VmdkWriteHookBackend(file, beforeChange);
    const fileSize = await file.size();
    if (type === VmdkExtentType.sparse) {
      const head = await readExact(file, 0, Math.min(VMDK_SECTOR_SIZE, fileSize), "header", "vmdk");
      if (head.length === VMDK_SECTOR_SIZE && headerU64(head, "capacity") === 0) {
        throw new UnsupportedFeatureError(
          `Cannot open vmdk image: extent '${file.name}' is itself a descriptor (nested descriptors are not supported)`,
          { format: "vmdk", structure: "header" },
        );
      }
      const geometry = await readVmdkSparseHeader(file, fileSize, { writable });
      extents.push(await VmdkSparseExtent.open({ file, view, geometry, fileSize, type, writable, beforeChange }));
    } else {
      extents.push(new VmdkFlatExtent(file, view, line.sectors * VMDK_SECTOR_SIZE, line.offsetSectors * VMDK_SECTOR_SIZE, type, writable));
    }
  }
  return extents;
}

/** The parent's CID, or undefined when it cannot be read (the backing open reports why). */
async function readParentCid(ctx: OpenContext, name: string): Promise<number | undefined> {
  let f: IoBackend | undefined;
  try {
    f = await ctx.openFile({ name, relativeTo: ctx.file, writable: false, purpose: "backing" });
    const size = await f.size();
    const head = await readExact(f, 0, Math.min(VMDK_SECTOR_SIZE, size), "header", "vmdk");
    const magic = String.fromCharCode(...head.subarray(0, 4));
    if (magic === VMDK_SPARSE_MAGIC && head.length === VMDK_SECTOR_SIZE) return (await readEmbeddedDescriptor(f, size, head))?.descriptor.cid;
    return size <= VMDK_DESCRIPTOR_MAX ? (await readDescriptorFile(f, size)).cid : undefined;
  } catch {
    return undefined;
  } finally {
    await f?.close().catch(() => {});
  }
}

/** Opens the image in `ctx.file`. */
export async function openVmdk(ctx: OpenContext): Promise<VmdkInstance> {
  const file = ctx.file;
  const fileSize = await file.size();
  if (fileSize < 4) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open vmdk image: File is too small, not a valid image (${fileSize} bytes)`, {
      format: "vmdk",
    });
  }
  const head = await readExact(file, 0, Math.min(VMDK_SECTOR_SIZE, fileSize), "header", "vmdk");
  const isSparse = String.fromCharCode(...head.subarray(0, 4)) === VMDK_SPARSE_MAGIC || String.fromCharCode(...head.subarray(0, 4)) === "COWD";
  const opened: IoBackend[] = [];
  let instance: VmdkInstance | undefined;
  const beforeChange = (): Promise<void> => instance?.changeCid() ?? Promise.resolve();
  try {
    let extents: VmdkExtent[];
    let descriptor: { descriptor: VmdkDescriptor; place: VmdkDescriptorPlace } | undefined;
    let createType: string;
    if (isSparse && head.length === VMDK_SECTOR_SIZE && headerU64(head, "capacity") === 0 && headerU64(head, "descriptorOffset") !== 0) {
      // A sparse header of no capacity that carries a descriptor listing other extents.
      descriptor = await readEmbeddedDescriptor(file, fileSize, head);
      createType = requireCreateType(descriptor!.descriptor);
      extents = await openDescriptorExtents(ctx, descriptor!.descriptor, beforeChange, opened);
    } else if (isSparse) {
      const geometry = await readVmdkSparseHeader(file, fileSize, { writable: !ctx.readOnly });
      descriptor = await readEmbeddedDescriptor(file, fileSize, head).catch((e: unknown) => {
        // A broken embedded descriptor costs the CIDs and the parent name, not the data.
        if (isImageError(e)) ctx.warn(`vmdk image '${file.name}': ignoring its descriptor: ${e.message}`);
        else throw e;
        return undefined;
      });
      createType = geometry.compressed ? "streamOptimized" : "monolithicSparse";
      const view = new VmdkWriteHookBackend(file, beforeChange);
      extents = [
        await VmdkSparseExtent.open({ file, view, geometry, fileSize, type: "", writable: !ctx.readOnly, beforeChange }),
      ];
    } else {
      const d = await readDescriptorFile(file, fileSize);
      createType = requireCreateType(d);
      descriptor = { descriptor: d, place: { kind: "file" } };
      extents = await openDescriptorExtents(ctx, d, beforeChange, opened);
    }
    let total = 0;
    for (const e of extents) total += e.size;
    if (!Number.isSafeInteger(total)) {
      throw new LimitExceededError(`Cannot open vmdk image: the extents add up to more than 2^53 bytes`, { format: "vmdk" });
    }
    const d = descriptor?.descriptor;
    const hint = d?.parentFileNameHint;
    const state: VmdkState = {
      file,
      readOnly: ctx.readOnly,
      extents,
      extentFiles: opened,
      createType,
      descriptor: descriptor ? { text: d!.text, place: descriptor.place } : undefined,
      cid: d?.cid,
      parentCid: d?.parentCid,
      backing: hint ? { name: hint, format: "vmdk" } : undefined,
    };
    instance = new VmdkInstance(state);
    if (hint && d?.parentCid !== undefined && d.parentCid !== NO_PARENT_CID) {
      const pcid = await readParentCid(ctx, hint);
      if (pcid !== undefined && pcid !== d.parentCid) {
        ctx.warn(
          `vmdk image '${file.name}': its parentCID ${d.parentCid.toString(16)} does not match the CID ${pcid.toString(16)} of its parent '${hint}' (the parent changed after this image was made; QEMU refuses to read through it)`,
        );
      }
    }
    return instance;
  } catch (e) {
    for (const f of opened) await f.close().catch(() => {});
    throw e;
  }
}

function requireCreateType(d: VmdkDescriptor): string {
  if (d.createType === undefined) {
    throw new CorruptImageError("Cannot open vmdk image: invalid VMDK image descriptor (no createType)", {
      format: "vmdk",
      structure: "descriptor",
    });
  }
  return d.createType;
}
