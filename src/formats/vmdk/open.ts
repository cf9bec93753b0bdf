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
import type { VmdkDescriptor } from "./descriptor.js";
import {
  readEmbeddedVmdkDescriptor,
  readVmdkCid,
  readVmdkDescriptorFile,
  type VmdkDescriptorPlace,
} from "./descriptor-read.js";
import type { VmdkExtent } from "./extent.js";
import { VmdkFlatExtent, VmdkZeroExtent } from "./flat-extent.js";
import { VmdkInstance, type VmdkState } from "./instance.js";
import { VMDK_COWD_MAGIC, VMDK_SECTOR_SIZE, VMDK_SPARSE_MAGIC, VmdkExtentType } from "./layout.js";
import { readVmdkSparseHeader, vmdkHeaderU64 } from "./sparse-header.js";
import { VmdkSparseExtent } from "./sparse-extent.js";

/** The CID that means "no parent". */
const NO_PARENT_CID = 0xffffffff;

/** Opens the extents a text descriptor lists; on failure every file opened so far is closed. */
async function openDescriptorExtents(
  ctx: OpenContext,
  d: VmdkDescriptor,
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
    const fileSize = await file.size();
    if (type === VmdkExtentType.sparse) {
      const head = await readExact(file, 0, Math.min(VMDK_SECTOR_SIZE, fileSize), "header", "vmdk");
      if (head.length === VMDK_SECTOR_SIZE && vmdkHeaderU64(head, "capacity") === 0) {
        throw new UnsupportedFeatureError(
          `Cannot open vmdk image: extent '${file.name}' is itself a descriptor (nested descriptors are not supported)`,
          { format: "vmdk", structure: "header" },
        );
      }
      const geometry = await readVmdkSparseHeader(file, fileSize, { writable });
      extents.push(await VmdkSparseExtent.open({ file, geometry, fileSize, type, writable }));
    } else {
      extents.push(new VmdkFlatExtent(file, line.sectors * VMDK_SECTOR_SIZE, line.offsetSectors * VMDK_SECTOR_SIZE, type, writable));
    }
  }
  return extents;
}

/** The parent's CID, or undefined when it cannot be read (the backing open reports why). */
async function readParentCid(ctx: OpenContext, name: string): Promise<number | undefined> {
  let f: IoBackend | undefined;
  try {
    f = await ctx.openFile({ name, relativeTo: ctx.file, writable: false, purpose: "backing" });
    return await readVmdkCid(f);
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
  const magic = String.fromCharCode(...head.subarray(0, 4));
  const isSparse = magic === VMDK_SPARSE_MAGIC || magic === VMDK_COWD_MAGIC;
  const opened: IoBackend[] = [];
  let instance: VmdkInstance | undefined;
  try {
    let extents: VmdkExtent[];
    let descriptor: { descriptor: VmdkDescriptor; place: VmdkDescriptorPlace } | undefined;
    let createType: string;
    const descriptorOnly = magic === VMDK_SPARSE_MAGIC && head.length === VMDK_SECTOR_SIZE &&
      vmdkHeaderU64(head, "capacity") === 0 && vmdkHeaderU64(head, "descriptorOffset") !== 0;
    if (descriptorOnly) {
      // A sparse header of no capacity that carries a descriptor listing other extents.
      descriptor = await readEmbeddedVmdkDescriptor(file, fileSize, head);
      createType = requireCreateType(descriptor!.descriptor);
      extents = await openDescriptorExtents(ctx, descriptor!.descriptor, opened);
    } else if (isSparse) {
      const geometry = await readVmdkSparseHeader(file, fileSize, { writable: !ctx.readOnly });
      descriptor = await readEmbeddedVmdkDescriptor(file, fileSize, head).catch((e: unknown) => {
        // A broken embedded descriptor costs the CIDs and the parent name, not the data.
        if (isImageError(e)) ctx.warn(`vmdk image '${file.name}': ignoring its descriptor: ${e.message}`);
        else throw e;
        return undefined;
      });
      createType = geometry.compressed ? "streamOptimized" : "monolithicSparse";
      extents = [
        await VmdkSparseExtent.open({ file, geometry, fileSize, type: "", writable: !ctx.readOnly }),
      ];
    } else {
      const d = await readVmdkDescriptorFile(file, fileSize);
      createType = requireCreateType(d);
      descriptor = { descriptor: d, place: { kind: "file" } };
      extents = await openDescriptorExtents(ctx, d, opened);
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
