/**
 * raw into a sink: the guest bytes in order, holes written as zeros (a pipe has no holes).
 * @module
 */
import type { SequentialWriter } from "../../core/sequential-writer.js";
import { UnsupportedFeatureError } from "../../errors.js";
import { writeRawDisk } from "../shared/sequential-units.js";

/** The raw sequential writer. Preallocation options are accepted (a stream is always full). */
export const rawSequentialWriter: SequentialWriter = {
  prepare(_options, compress) {
    if (compress) {
      throw new UnsupportedFeatureError("Compression not supported for this file format", { format: "raw" });
    }
    return { passes: 1 };
  },
  write: (ctx) => writeRawDisk(ctx, ctx.source.size),
};
