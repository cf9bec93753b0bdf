/**
 * `info` of a VMDK: qemu-img's `format-specific` data (create type, CIDs, one entry per
 * extent) and the cluster size when every extent is alike.
 * @module
 */
import type { FormatInfo } from "../../core/format.js";
import type { VmdkState } from "./instance.js";

/** The `info` of an open VMDK. */
export function vmdkInfo(state: VmdkState): FormatInfo {
  const infos = state.extents.map((e) => e.info());
  const extents = infos.map((x) => {
    const o: Record<string, unknown> = {};
    if (x.compressed) o.compressed = true;
    o["virtual-size"] = x.size;
    if (x.fileName !== undefined) o.filename = x.fileName;
    if (x.grainSize !== undefined) o["cluster-size"] = x.grainSize;
    o.format = x.type;
    return o;
  });
  const data: Record<string, unknown> = {};
  if (state.cid !== undefined) data.cid = state.cid;
  if (state.parentCid !== undefined) data["parent-cid"] = state.parentCid;
  data["create-type"] = state.createType;
  data.extents = extents;
  // QEMU reports a cluster size only when all extents are of one kind with one grain size.
  const first = infos[0];
  const alike = first !== undefined && infos.every((x) => x.compressed === first.compressed && x.grainSize === first.grainSize);
  return {
    clusterSize: alike ? first.grainSize : undefined,
    formatSpecific: { type: "vmdk", data },
  };
}
