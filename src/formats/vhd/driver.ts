/**
 * vpc (alias vhd): Virtual PC / Hyper-V VHD, fixed, dynamic and differencing.
 * @module
 */
import type { CreateContext, FormatDriver, FormatInstance, OpenContext } from "../../core/format.js";
import { ImageError } from "../../errors.js";
import { VhdBlockMap } from "./block-map.js";
import { createVhd } from "./create.js";
import { readVhdDynamic } from "./dynamic-header.js";
import { probeVhd, readVhdFooter } from "./footer.js";
import { vhdVirtualSize, type VhdSizeCalc } from "./geometry.js";
import { VhdInstance, type VhdState } from "./instance.js";
import { VHD_MAX_SECTORS, VhdDiskType, encodeVhdFooter, type VhdDiskTypeName } from "./layout.js";
import { readVhdParentNames, vhdPathToName } from "./parent.js";
import { vhdSequentialWriter } from "./sequential-writer.js";
import { measureVhd } from "./measure.js";

async function openVhd(ctx: OpenContext): Promise<FormatInstance> {
  const file = ctx.file;
  const fileSize = await file.size();
  const calcOpt = ctx.options.force_size_calc;
  if (calcOpt !== undefined && calcOpt !== "chs" && calcOpt !== "current_size") {
    throw new ImageError("ERR_INVALID_OPTION", `Invalid size calculation mode: '${calcOpt}' (valid: chs, current_size)`);
  }
  const sizeCalc: VhdSizeCalc = (calcOpt as VhdSizeCalc | undefined) ?? "auto";
  const found = await readVhdFooter(file, fileSize);
  const footer = found.footer;
  const subformat: VhdDiskTypeName =
    footer.diskType === VhdDiskType.fixed ? "fixed" : footer.diskType === VhdDiskType.dynamic ? "dynamic" : "differencing";
  if (subformat === "fixed" && !ctx.explicitFormat && !ctx.readOnly) {
    throw new ImageError(
      "ERR_OPEN_DENIED",
      `Refusing to open '${file.name}' writable as a fixed VHD found by its footer alone: name the format (vpc or raw) to write to it`,
      { format: "vpc" },
    );
  }
  const size = vhdVirtualSize(footer, sizeCalc);
  if (size / 512 > VHD_MAX_SECTORS) {
    throw new ImageError("ERR_LIMIT_EXCEEDED", `Cannot open vpc image: virtual size of ${size} bytes exceeds the VHD limit of 2040 GiB`, {
      format: "vpc",
      structure: "footer",
    });
  }
  const problems = [...found.problems];
  if (subformat === "fixed") {
    if (fileSize - 512 < size) {
      throw new ImageError("ERR_CORRUPT_IMAGE", `Cannot open vpc image: a fixed disk of ${size} bytes needs a file of ${size + 512} bytes, found ${fileSize}`, {
        format: "vpc",
        structure: "footer",
      });
    }
    const state: VhdState = {
      file, readOnly: ctx.readOnly, fileSize, footer, footerFromStart: false, subformat, size, sizeCalc, parentNames: [], problems,
    };
    return new VhdInstance(state);
  }
  const dynamic = await readVhdDynamic(file, fileSize, footer, size);
  problems.push(...dynamic.problems);
  const differencing = subformat === "differencing";
  const parentNames = differencing ? await readVhdParentNames(file, fileSize, dynamic.header, problems) : [];
  if (differencing && parentNames.length === 0) {
    throw new ImageError("ERR_CORRUPT_IMAGE", "Cannot open vpc image: the differencing disk names no parent (no usable parent locator)", {
      format: "vpc",
      structure: "parent locator",
    });
  }
  const blockMap = new VhdBlockMap({
    file,
    kernel: ctx.kernel,
    size,
    blockSize: dynamic.blockSize,
    bitmapSize: dynamic.bitmapSize,
    batOffset: dynamic.batOffset,
    bat: dynamic.bat,
    freeOffset: dynamic.freeOffset,
    differencing,
    footer: encodeVhdFooter(footer),
    fileSize,
  });
  if (ctx.readOnly) for (const p of problems) ctx.warn(`vpc image '${file.name}': ${p} (run check -r all to repair)`);
  const state: VhdState = {
    file, readOnly: ctx.readOnly, fileSize, footer, footerFromStart: found.fromStart, subformat, size, sizeCalc,
    dynamic, blockMap, parentNames, problems,
  };
  const backing = differencing ? { name: vhdPathToName(parentNames[0].path), format: "vpc" } : undefined;
  const inst = new VhdInstance(state, backing);
  // A writable open repairs what an interrupted write leaves (a torn end footer), as the
  // footer copy at offset 0 still describes the disk.
  if (!ctx.readOnly && problems.length > 0) {
    const res = await inst.check("all");
    for (const m of res.messages) ctx.warn(`vpc image '${file.name}': ${m}`);
  }
  return inst;
}

/** The vpc (VHD) format driver. */
export const vhdDriver: FormatDriver = {
  name: "vpc",
  aliases: ["vhd"],
  supportsBacking: true,
  createOptions: [
    {
      name: "subformat",
      type: "enum",
      values: ["dynamic", "fixed"],
      help: "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed}",
      defaultText: "dynamic",
    },
    {
      name: "force_size",
      type: "bool",
      help: "Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation",
      defaultText: "off",
    },
    {
      name: "azure",
      type: "bool",
      help: "Make a VHD Azure accepts: fixed, force_size, virtual size rounded up to a whole MiB (vdisk extension)",
      defaultText: "off",
    },
  ],
  probe: probeVhd,
  sequentialWriter: vhdSequentialWriter,
  open: openVhd,
  create: (ctx: CreateContext) => createVhd(ctx),
  measure: measureVhd,
};
