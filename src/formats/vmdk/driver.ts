/**
 * vmdk: VMware virtual disks — monolithicSparse, streamOptimized, monolithicFlat and the
 * twoGbMaxExtent subformats, with parent (backing) disks.
 * @module
 */
import type { FormatDriver, ProbeInput } from "../../core/format.js";
import { createVmdk } from "./create.js";
import { looksLikeVmdkDescriptor, startsWithVmdkSignature } from "./descriptor.js";
import { VMDK_ADAPTER_TYPES, VMDK_COWD_MAGIC, VMDK_SPARSE_MAGIC, VMDK_SUBFORMATS } from "./layout.js";
import { openVmdk } from "./open.js";
import { vmdkSequentialWriter } from "./sequential-writer.js";
import { measureVmdk } from "./measure.js";

function probeVmdk(input: ProbeInput): number {
  const h = input.head;
  if (h.length < 4) return 0;
  const magic = String.fromCharCode(h[0], h[1], h[2], h[3]);
  if (magic === VMDK_SPARSE_MAGIC || magic === VMDK_COWD_MAGIC) return 100;
  return startsWithVmdkSignature(h) || looksLikeVmdkDescriptor(h) ? 100 : 0;
}

/** The vmdk format driver. */
export const vmdkDriver: FormatDriver = {
  name: "vmdk",
  createOptions: [
    {
      name: "adapter_type",
      type: "enum",
      values: VMDK_ADAPTER_TYPES,
      help: "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX",
      defaultText: "ide",
    },
    { name: "compat6", type: "bool", help: "VMDK version 6 image", defaultText: "off" },
    { name: "hwversion", type: "string", help: "VMDK hardware version", defaultText: "undefined" },
    {
      name: "subformat",
      type: "enum",
      values: VMDK_SUBFORMATS,
      help: "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized}",
      defaultText: "monolithicSparse",
    },
    { name: "toolsversion", type: "string", help: "VMware guest tools version" },
    { name: "zeroed_grain", type: "bool", help: "Enable efficient zero writes using the zeroed-grain GTE feature", defaultText: "off" },
  ],
  supportsBacking: true,
  probe: probeVmdk,
  sequentialWriter: vmdkSequentialWriter,
  open: openVmdk,
  create: createVmdk,
  measure: measureVmdk,
};
