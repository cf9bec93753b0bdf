/**
 * `vdisk amend -o …` for qcow2: the options qemu-img amend takes, with its checks and wording.
 * vdisk changes `lazy_refcounts` and `size`; the others are accepted when they name the value
 * the image already has, and refused otherwise — the backing file (as qemu-img 7.2 does: rebase
 * changes it), the compatibility level, the refcount width, the data file and encryption (which
 * need rewriting metadata vdisk does not rewrite in place).
 * @module
 */
import type { AmendContext, CreateOptionSpec } from "../../core/format.js";
import { parseSize } from "../../core/options.js";
import { ImageError, type ImageErrorCode } from "../../errors.js";
import { QCOW2_CREATE_OPTIONS } from "./create.js";
import { qcow2U64Bytes } from "./header.js";
import type { Qcow2Instance } from "./instance.js";
import { QCOW2_COMPAT_LAZY_REFCOUNTS, QCOW2_HEADER_FIELDS } from "./layout.js";

/** An amend error with qemu-img's second line (`hint`) when it prints one. */
export class Qcow2AmendError extends ImageError {
  readonly hint?: string;
  constructor(code: ImageErrorCode, message: string, hint?: string) {
    super(code, message, { format: "qcow2" });
    this.name = "Qcow2AmendError";
    this.hint = hint;
  }
}

/** The options qemu-img amend lists for qcow2 (`-o help`). */
export const QCOW2_AMEND_OPTIONS: readonly CreateOptionSpec[] = [
  { name: "backing_file", type: "string", help: "File name of a base image" },
  { name: "backing_fmt", type: "string", help: "Image format of the base image" },
  { name: "compat", type: "string", help: "Compatibility level (v2 [0.10] or v3 [1.1])" },
  { name: "data_file", type: "string", help: "File name of an external data file" },
  { name: "data_file_raw", type: "bool", help: "The external data file must stay valid as a raw image" },
  { name: "lazy_refcounts", type: "bool", help: "Postpone refcount updates" },
  { name: "refcount_bits", type: "number", help: "Width of a reference count entry in bits" },
  { name: "size", type: "size", help: "Virtual disk size" },
];

const COMPAT_AT = QCOW2_HEADER_FIELDS.find((f) => f.name === "compatibleFeatures")!.offset;

const invalid = (message: string, hint?: string): Qcow2AmendError => new Qcow2AmendError("ERR_INVALID_OPTION", message, hint);
const unsupported = (message: string): Qcow2AmendError => new Qcow2AmendError("ERR_UNSUPPORTED_FEATURE", message);

function parseBool(name: string, text: string): boolean {
  if (/^(on|yes|true|y)$/i.test(text)) return true;
  if (/^(off|no|false|n)$/i.test(text)) return false;
  throw invalid(`Parameter '${name}' expects 'on' or 'off'`);
}

/**
 * Applies `pairs` to the qcow2 image `inst` (open read-write; the engine checked that). Every
 * option is checked before anything changes. Throws {@link Qcow2AmendError}.
 */
export async function amendQcow2(
  inst: Qcow2Instance,
  pairs: ReadonlyArray<readonly [string, string]>,
  ctx: AmendContext,
): Promise<void> {
  const h = inst.header;
  const v = new Map<string, string>();
  for (const [key, value] of pairs) {
    if (key.startsWith("encrypt.")) throw unsupported("Encryption options cannot be amended: vdisk does not support encrypted qcow2 images");
    if (QCOW2_AMEND_OPTIONS.some((o) => o.name === key)) v.set(key, value);
    else if (QCOW2_CREATE_OPTIONS.some((o) => o.name === key)) throw invalid(`Invalid parameter '${key}'`, "This option is only supported for image creation");
    else throw invalid(`Invalid parameter '${key}'`);
  }

  let version = h.version;
  const compat = v.get("compat");
  if (compat !== undefined) {
    const want = compat === "0.10" || compat === "v2" ? 2 : compat === "1.1" || compat === "v3" ? 3 : 0;
    if (want === 0) throw invalid(`Unknown compatibility level ${compat}`);
    if (want !== h.version) {
      throw unsupported(`Changing the compatibility level of a qcow2 image (compat ${h.version === 2 ? "0.10" : "1.1"} to ${compat}) is not supported by vdisk; convert the image instead`);
    }
    version = want;
  }
  const rb = v.get("refcount_bits");
  if (rb !== undefined) {
    const bits = Number(rb);
    if (!Number.isInteger(bits) || bits < 1 || bits > 64 || (bits & (bits - 1)) !== 0) {
      throw invalid("Refcount width must be a power of two and may not exceed 64 bits");
    }
    if (version < 3 && bits !== 16) {
      throw invalid("Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
    }
    if (bits !== 1 << h.refcountOrder) throw unsupported(`Changing the refcount width (${1 << h.refcountOrder} to ${bits} bits) is not supported by vdisk`);
  }
  if (v.has("backing_file") || v.has("backing_fmt")) {
    if (v.get("backing_file") !== h.backingFile || v.get("backing_fmt") !== h.backingFormat) {
      throw invalid("Cannot amend the backing file", "You can use 'vdisk rebase' instead.");
    }
  }
  const df = v.get("data_file");
  if (df !== undefined) {
    if (h.dataFile === undefined) throw invalid("data-file can only be set for images that use an external data file");
    if (df !== h.dataFile) throw unsupported("Changing the external data file name is not supported by vdisk");
  }
  const dfr = v.get("data_file_raw");
  if (dfr !== undefined && parseBool("data_file_raw", dfr) !== inst.dataFileRaw) {
    throw unsupported("Changing data_file_raw is not supported by vdisk");
  }
  const lazyText = v.get("lazy_refcounts");
  const lazy = lazyText === undefined ? undefined : parseBool("lazy_refcounts", lazyText);
  if (lazy && version < 3) {
    throw invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
  }
  const sizeText = v.get("size");
  let size: number | undefined;
  if (sizeText !== undefined) {
    try {
      size = parseSize(sizeText);
    } catch {
      throw invalid(`Parameter 'size' expects a non-negative number below 2^64`);
    }
    if (size % 512 !== 0) throw invalid("The new size must be a multiple of 512");
  }

  if (lazy !== undefined && lazy !== inst.lazyRefcounts) {
    // Clean first: the dirty bit only means something while lazy refcounts are on.
    await ctx.flush();
    const bits = lazy ? h.compatibleFeatures | QCOW2_COMPAT_LAZY_REFCOUNTS : h.compatibleFeatures & ~QCOW2_COMPAT_LAZY_REFCOUNTS;
    await inst.file.write(COMPAT_AT, qcow2U64Bytes(bits));
    await inst.file.flush();
    h.compatibleFeatures = bits;
  }
  if (size !== undefined && size !== inst.size) await ctx.resize(size);
  await ctx.flush();
}
