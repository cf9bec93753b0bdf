/**
 * `info` for VHDX: qemu-img shows only the block size as cluster_size; vdisk adds the
 * subformat, sector sizes, log and parent details under format-specific data.
 * @module
 */
import type { FormatInfo } from "../../core/format.js";
import type { VhdxOpenState } from "./instance.js";

/** The {@link FormatInfo} of an open VHDX image. */
export function vhdxInfo(state: VhdxOpenState): FormatInfo {
  const md = state.metadata;
  const h = state.headers.current;
  const data: Record<string, unknown> = {
    subformat: md.hasParent ? "differencing" : md.leaveBlocksAllocated ? "fixed" : "dynamic",
    "block-size": md.blockSize,
    "logical-sector-size": md.logicalSectorSize,
    "physical-sector-size": md.physicalSectorSize,
    "log-size": h.logLength,
    "page83-id": md.page83,
    "data-write-guid": h.dataWriteGuid,
    "allocated-blocks": state.bat.countAllocated(),
    "total-blocks": state.geometry.payloadBlocks,
  };
  if (state.creator) data.creator = state.creator;
  if (state.logState !== "clean") {
    data.log = state.logState;
    data["log-entries"] = state.logEntries;
  }
  if (md.parentLocator) {
    data["parent-locator"] = Object.fromEntries(md.parentLocator.entries);
  }
  return {
    clusterSize: md.blockSize,
    dirty: state.logState === "replayed-in-memory",
    formatSpecific: { type: "vhdx", data },
  };
}
