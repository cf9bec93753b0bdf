/**
 * vdi: VirtualBox Disk Image, dynamic and static.
 * @module
 */
import type { FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { createVdi } from "./create.js";
import { readVdi } from "./header.js";
import { VdiInstance } from "./instance.js";
import { VDI_HEADER_SIZE, VDI_SIGNATURE } from "./layout.js";
import { measureVdi } from "./measure.js";

function probeVdi(input: ProbeInput): number {
  const h = input.head;
  if (h.length < VDI_HEADER_SIZE) return 0;
  const sig = new DataView(h.buffer, h.byteOffset, h.byteLength).getUint32(64, true);
  return sig === VDI_SIGNATURE ? 100 : 0;
}

async function openVdi(ctx: OpenContext): Promise<FormatInstance> {
  const opened = await readVdi(ctx.file, await ctx.file.size());
  if (opened.writeBlocker && !ctx.readOnly) ctx.warn(`vdi image '${ctx.file.name}': writes will be refused: ${opened.writeBlocker}`);
  return new VdiInstance(ctx.file, ctx.readOnly, opened);
}

/** The vdi format driver. */
export const vdiDriver: FormatDriver = {
  name: "vdi",
  createOptions: [
    { name: "static", type: "bool", help: "VDI static (pre-allocated) image", defaultText: "off" },
  ],
  probe: probeVdi,
  open: openVdi,
  create: createVdi,
  measure: measureVdi,
};
