/**
 * `info` for VHD, including whether Azure would accept the disk as it is.
 * @module
 */
import type { FormatInfo } from "../../core/format.js";
import { formatUuid } from "../../codec/uuid.js";
import { formatBytes } from "../../errors.js";
import { vhdSizeSource } from "./geometry.js";
import type { VhdState } from "./instance.js";
import { VHD_FEATURES_RESERVED, VHD_FOOTER_SIZE, VHD_VERSION_1_0, VhdDiskType, type VhdFooter } from "./layout.js";

const MIB = 1 << 20;

/**
 * Why Azure would refuse this VHD, one sentence per rule broken (empty when it would accept
 * it). Azure takes only fixed VHDs whose virtual size is a whole number of MiB, with a valid
 * footer as the file's last 512 bytes and nothing else after the data.
 */
export function vhdAzureProblems(footer: VhdFooter, fileSize: number): string[] {
  const out: string[] = [];
  if (footer.diskType !== VhdDiskType.fixed) {
    const kind = footer.diskType === VhdDiskType.dynamic ? "dynamic" : "differencing";
    out.push(`Azure accepts only fixed VHDs; this one is ${kind} (convert with -o subformat=fixed,force_size=on or -o azure=on)`);
  }
  if (footer.currentSize % MIB !== 0) {
    out.push(`the virtual size ${footer.currentSize} bytes is not a whole number of MiB (use -o azure=on to round it up)`);
  }
  if (footer.diskType === VhdDiskType.fixed && fileSize !== footer.currentSize + VHD_FOOTER_SIZE) {
    out.push(`the file is ${fileSize} bytes; a fixed VHD of ${footer.currentSize} bytes must be exactly ${footer.currentSize + VHD_FOOTER_SIZE}`);
  }
  if (footer.features !== VHD_FEATURES_RESERVED && (footer.features & VHD_FEATURES_RESERVED) === 0) {
    out.push(`the footer's features field 0x${footer.features.toString(16)} lacks the reserved bit 0x2`);
  }
  if (footer.fileFormatVersion !== VHD_VERSION_1_0) {
    out.push(`the footer's format version 0x${footer.fileFormatVersion.toString(16)} is not 1.0`);
  }
  if (footer.currentSize > 4095 * 1024 * MIB) {
    out.push(`the virtual size ${formatBytes(footer.currentSize)} exceeds Azure's limit for page blob disks`);
  }
  return out;
}

function trimText(s: string): string {
  return s.replace(/[\0 ]+$/, "");
}

/** The `info` of an open VHD. `format-specific` follows qemu-img's JSON naming style. */
export function vhdInfo(state: VhdState): FormatInfo {
  const f = state.footer;
  const dyn = state.dynamic;
  const azure = vhdAzureProblems(f, state.fileSize);
  const data: Record<string, unknown> = {
    subformat: state.subformat,
    "creator-app": trimText(f.creatorApp),
    "creator-version": `${f.creatorVersion >>> 16}.${f.creatorVersion & 0xffff}`,
    "creator-os": trimText(f.creatorHostOs),
    "current-size": f.currentSize,
    "original-size": f.originalSize,
    geometry: { cylinders: f.cylinders, heads: f.heads, sectors: f.sectorsPerTrack },
    "size-source": vhdSizeSource(f, state.sizeCalc),
    uuid: formatUuid(f.uniqueId),
    "azure-ready": azure.length === 0,
  };
  if (azure.length) data["azure-problems"] = azure;
  if (dyn) {
    data["block-size"] = dyn.blockSize;
    data["max-table-entries"] = dyn.header.maxTableEntries;
  }
  if (state.subformat === "differencing" && dyn) {
    data["parent-uuid"] = formatUuid(dyn.header.parentUniqueId);
    data["parent-names"] = state.parentNames.map((p) => ({ source: p.source, path: p.path }));
  }
  return { clusterSize: dyn?.blockSize, formatSpecific: { type: "vpc", data } };
}
