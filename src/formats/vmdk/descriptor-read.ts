/**
 * Reading a VMDK's descriptor from where it lives: embedded in a sparse file (after the
 * header), or a text file of its own; both bounded by {@link VMDK_DESCRIPTOR_MAX}.
 * @module
 */
import { CorruptImageError, LimitExceededError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { parseVmdkDescriptor, vmdkDescriptorText, type VmdkDescriptor } from "./descriptor.js";
import { VMDK_DEFAULT_DESCRIPTOR_SECTORS, VMDK_DESCRIPTOR_MAX, VMDK_SECTOR_SIZE, VMDK_SPARSE_MAGIC } from "./layout.js";
import { vmdkHeaderU64 } from "./sparse-header.js";

/** Where a descriptor lives, for rewriting it (the CID update). */
export type VmdkDescriptorPlace =
  | { readonly kind: "embedded"; readonly offset: number; readonly capacity: number }
  | { readonly kind: "file" };

/**
 * The descriptor embedded in a sparse file, or undefined when it has none. Its size is bounded
 * by {@link VMDK_DESCRIPTOR_MAX} and the file.
 */
export async function readEmbeddedVmdkDescriptor(
  file: IoBackend,
  fileSize: number,
  head: Uint8Array,
): Promise<{ descriptor: VmdkDescriptor; place: VmdkDescriptorPlace } | undefined> {
  const offsetSectors = vmdkHeaderU64(head, "descriptorOffset");
  if (offsetSectors === 0) return undefined;
  const offset = offsetSectors * VMDK_SECTOR_SIZE;
  if (!(offset < fileSize)) {
    throw new CorruptImageError(`Cannot open vmdk image: the descriptor offset ${offset} lies past the end of the file`, {
      format: "vmdk",
      structure: "descriptor",
    });
  }
  const sizeSectors = vmdkHeaderU64(head, "descriptorSize") || VMDK_DEFAULT_DESCRIPTOR_SECTORS;
  const capacity = Math.min(sizeSectors * VMDK_SECTOR_SIZE, VMDK_DESCRIPTOR_MAX, fileSize - offset);
  const bytes = await readExact(file, offset, capacity, "descriptor", "vmdk");
  const descriptor = parseVmdkDescriptor(vmdkDescriptorText(bytes));
  return { descriptor, place: { kind: "embedded", offset, capacity } };
}

/** Reads the text descriptor that makes up the whole of `file`. */
export async function readVmdkDescriptorFile(file: IoBackend, fileSize: number): Promise<VmdkDescriptor> {
  if (fileSize > VMDK_DESCRIPTOR_MAX) {
    throw new LimitExceededError(
      `Cannot open vmdk image: a descriptor file of ${fileSize} bytes exceeds the limit of ${VMDK_DESCRIPTOR_MAX}`,
      { format: "vmdk", structure: "descriptor" },
    );
  }
  return parseVmdkDescriptor(vmdkDescriptorText(await readExact(file, 0, fileSize, "descriptor", "vmdk")));
}

/**
 * The CID of the VMDK in `file` (a sparse file with an embedded descriptor, or a descriptor
 * file), or undefined when it has no descriptor or no CID. Throws ImageErrors on bad input.
 */
export async function readVmdkCid(file: IoBackend): Promise<number | undefined> {
  const size = await file.size();
  const head = await readExact(file, 0, Math.min(VMDK_SECTOR_SIZE, size), "header", "vmdk");
  if (head.length === VMDK_SECTOR_SIZE && String.fromCharCode(...head.subarray(0, 4)) === VMDK_SPARSE_MAGIC) {
    return (await readEmbeddedVmdkDescriptor(file, size, head))?.descriptor.cid;
  }
  return (await readVmdkDescriptorFile(file, size)).cid;
}
