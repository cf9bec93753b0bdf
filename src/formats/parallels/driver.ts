/**
 * parallels: Parallels / Virtuozzo expandable images, versions 1 and 2.
 * @module
 */
import type { FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { createParallels } from "./create.js";
import { ParallelsInstance } from "./instance.js";
import { PARALLELS_HEADER_SIZE, PARALLELS_MAGIC_V1, PARALLELS_MAGIC_V2, PARALLELS_VERSION } from "./layout.js";
import { readParallels } from "./state.js";
import { measureParallels } from "./measure.js";

function probeParallels(input: ProbeInput): number {
  const h = input.head;
  if (h.length < PARALLELS_HEADER_SIZE) return 0;
  const magic = String.fromCharCode(...h.subarray(0, 16));
  const version = new DataView(h.buffer, h.byteOffset, h.byteLength).getUint32(16, true);
  return (magic === PARALLELS_MAGIC_V1 || magic === PARALLELS_MAGIC_V2) && version === PARALLELS_VERSION ? 100 : 0;
}

async function openParallels(ctx: OpenContext): Promise<FormatInstance> {
  const file = ctx.file;
  const fileSize = await file.size();
  const state = await readParallels(file, fileSize);
  const inst = new ParallelsInstance(state, ctx.readOnly, ctx.kernel);
  const usage = inst.rebuildUsage(fileSize);
  if (state.extension?.problem) ctx.warn(`parallels image '${file.name}': ${state.extension.problem}; the extension is kept as it is`);
  if (ctx.readOnly) return inst;
  if (state.extension?.bitmaps.length) {
    ctx.warn(
      `parallels image '${file.name}': its format extension holds dirty bitmaps; vdisk keeps them but does not record writes in them`,
    );
  }
  // Like QEMU, a read-write open repairs what a crash or an old writer may have left (the
  // repair sets the in-use flag first; otherwise the first change does).
  const needCheck = state.unclean || !state.dataOffOk || usage.duplicates.length > 0 || usage.outside.length > 0;
  if (needCheck) {
    const res = await inst.check("all");
    for (const m of res.messages) ctx.warn(`parallels image '${file.name}': ${m}`);
  }
  return inst;
}

/** The parallels format driver. */
export const parallelsDriver: FormatDriver = {
  name: "parallels",
  createOptions: [
    { name: "cluster_size", type: "size", help: "Parallels image cluster size", defaultText: "1048576" },
  ],
  probe: probeParallels,
  open: openParallels,
  create: createParallels,
  measure: measureParallels,
};
