/**
 * The VHDX format driver (Hyper-V's virtual hard disk v2), format name `vhdx`.
 * @module
 */
import type { CreateContext, FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { VHDX_CREATE_OPTIONS, createVhdx } from "./create.js";
import { VHDX_FILE_SIGNATURE } from "./layout.js";
import { openVhdx } from "./open.js";
import { measureVhdx } from "./measure.js";

/** The VHDX driver: probes the `vhdxfile` signature at offset 0. */
export const vhdxDriver: FormatDriver = {
  name: "vhdx",
  createOptions: VHDX_CREATE_OPTIONS,
  measure: measureVhdx,
  supportsBacking: true,
  probe(input: ProbeInput): number {
    const h = input.head;
    if (h.length < 8) return 0;
    for (let i = 0; i < 8; i++) if (h[i] !== VHDX_FILE_SIGNATURE.charCodeAt(i)) return 0;
    return 100;
  },
  open(ctx: OpenContext): Promise<FormatInstance> {
    return openVhdx(ctx);
  },
  create(ctx: CreateContext): Promise<void> {
    return createVhdx(ctx);
  },
};
