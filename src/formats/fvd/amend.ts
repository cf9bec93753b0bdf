/**
 * `vdisk amend -o key=val` for FVD: edits the header fields FVD's own `qemu-img update` edited
 * (spec §3.11), with the same attribute names.
 *
 * Differences from `qemu-img update`, by design: `size` is a byte size with the usual suffixes
 * (qemu-img update read a bare number as KB) and goes through resize, which grows the table
 * instead of leaving it short; `clean_shutdown` takes effect at close (while the image is open
 * read-write the flag on disk stays 0, so a crash still replays the journal).
 * @module
 */
import type { AmendContext, CreateOptionSpec } from "../../core/format.js";
import { parseSize } from "../../core/options.js";
import { ImageError } from "../../errors.js";
import { fvdField } from "./header.js";
import type { FvdInstance } from "./instance.js";
import type { FvdHeaderField } from "./layout.js";

/** How one attribute is checked and stored. */
interface AmendRule {
  /** Header field written (absent for `size` and `clean_shutdown`). */
  readonly field?: FvdHeaderField;
  readonly kind: "size" | "name" | "bool" | "int32" | "int64";
  /** Smallest accepted value for numbers. */
  readonly min?: number;
  readonly max?: number;
}

const INT32_MAX = 0x7fffffff;

/** Every attribute `amendFvdImage` accepts, with qemu-img update's names. */
export const FVD_AMEND_RULES: Readonly<Record<string, AmendRule>> = {
  size: { kind: "size" },
  base_img: { field: "base_img", kind: "name" },
  data_file: { field: "data_file", kind: "name" },
  need_zero_init: { field: "need_zero_init", kind: "bool" },
  copy_on_read: { field: "copy_on_read", kind: "bool" },
  clean_shutdown: { kind: "bool" },
  max_outstanding_copy_on_read_data: { field: "max_outstanding_copy_on_read_data", kind: "int64", min: 1 },
  prefetch_start_delay: { field: "prefetch_start_delay", kind: "int32" },
  max_num_outstanding_prefetch_writes: { field: "num_prefetch_slots", kind: "int32", min: 1 },
  bytes_per_prefetch: { field: "bytes_per_prefetch", kind: "int32", min: 4096 },
  prefetch_min_read_throughput_threshold: { field: "prefetch_min_read_throughput", kind: "int32" },
  prefetch_min_write_throughput_threshold: { field: "prefetch_min_write_throughput", kind: "int32" },
  prefetch_perf_calc_alpha: { field: "prefetch_perf_calc_alpha", kind: "int32", min: 0, max: 100 },
  prefetch_read_throughput_measure_time: { field: "prefetch_read_throughput_measure_time", kind: "int32" },
  prefetch_write_throughput_measure_time: { field: "prefetch_write_throughput_measure_time", kind: "int32" },
  prefetch_over_threshold_throttle_time: { field: "prefetch_throttle_time", kind: "int32" },
};

function invalid(message: string): ImageError {
  return new ImageError("ERR_INVALID_OPTION", `Cannot amend fvd image: ${message}`, { format: "fvd" });
}

const FVD_OPTION_TYPES: Record<AmendRule["kind"], CreateOptionSpec["type"]> = {
  size: "size",
  name: "string",
  bool: "bool",
  int32: "number",
  int64: "number",
};

/** The attributes as amend options (`amend -o help`), sorted by name. */
export const FVD_AMEND_OPTIONS: readonly CreateOptionSpec[] = Object.entries(FVD_AMEND_RULES)
  .map(([name, rule]): CreateOptionSpec => ({ name, type: FVD_OPTION_TYPES[rule.kind], help: `FVD header attribute ${name}` }))
  .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

/**
 * Applies `pairs` to the header of the FVD image `inst` (open read-write; the engine checked).
 * Every value is checked before anything is written; an unknown attribute is
 * `ERR_INVALID_OPTION` naming the valid ones. Header-only changes (`base_img`, `data_file`) take
 * effect at the next open.
 */
export async function amendFvd(
  inst: FvdInstance,
  pairs: ReadonlyArray<readonly [string, string]>,
  ctx: AmendContext,
): Promise<void> {
  const changes: Array<[AmendRule, string, number | string]> = [];
  for (const [key, value] of pairs) {
    const rule = FVD_AMEND_RULES[key];
    if (!rule) throw invalid(`unknown attribute '${key}' (valid: ${Object.keys(FVD_AMEND_RULES).join(", ")})`);
    switch (rule.kind) {
      case "size": {
        let n: number;
        try {
          n = parseSize(value);
        } catch {
          throw invalid(`invalid size '${value}'`);
        }
        changes.push([rule, key, n]);
        break;
      }
      case "name":
        try {
          changes.push([rule, key, fvdField(value, 1024)]);
        } catch {
          throw invalid(`${key} is longer than 1023 characters`);
        }
        break;
      case "bool":
        // qemu-img update's rule: true/on set the flag, anything else clears it.
        changes.push([rule, key, /^(true|on)$/i.test(value) ? 1 : 0]);
        break;
      default: {
        const n = Number(value);
        const max = rule.max ?? (rule.kind === "int32" ? INT32_MAX : Number.MAX_SAFE_INTEGER);
        const min = rule.min ?? (rule.kind === "int32" ? -INT32_MAX - 1 : 0);
        if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
          throw invalid(`${key}=${value} is not an integer in ${min}..${max}`);
        }
        changes.push([rule, key, n]);
      }
    }
  }
  await ctx.flush();
  for (const [rule, key, v] of changes) {
    if (rule.kind === "size") await ctx.resize(v as number);
    else if (key === "clean_shutdown") inst.setCleanOnClose(v === 1);
    else (inst.header as Record<string, number | string>)[rule.field!] = v;
  }
  await inst.writeHeader();
  await inst.file.flush();
}
