/**
 * Changing options of an existing image (`vdisk amend -o …`), dispatched by format: qcow2 takes
 * qemu-img amend's options, FVD the header attributes of its own `qemu-img update`; other
 * formats have none (as with qemu-img).
 * @module
 */
import type { CreateOptionSpec } from "../core/format.js";
import type { ImageDevice } from "../core/image-device.js";
import { splitOptionString } from "../core/options.js";
import { UnsupportedFeatureError } from "../errors.js";
import { FVD_AMEND_RULES, amendFvdImage } from "../formats/fvd/amend.js";
import { QCOW2_AMEND_OPTIONS, amendQcow2Image } from "../formats/qcow2/amend.js";

const FVD_TYPES: Record<string, CreateOptionSpec["type"]> = { size: "size", name: "string", bool: "bool", int32: "number", int64: "number" };

/** The options `amend` takes for `format`, sorted by name; `undefined` when it takes none. */
export function amendOptions(format: string): readonly CreateOptionSpec[] | undefined {
  if (format === "qcow2") return QCOW2_AMEND_OPTIONS;
  if (format === "fvd") {
    return Object.entries(FVD_AMEND_RULES)
      .map(([name, rule]): CreateOptionSpec => ({ name, type: FVD_TYPES[rule.kind], help: `FVD header attribute ${name}` }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  return undefined;
}

/**
 * Applies `options` (`"key=val,…"`, `,,` escaping a comma) to `image`, open read-write. Throws
 * `ERR_UNSUPPORTED_FEATURE` ("Format driver 'X' does not support option amendment") for formats
 * without amendable options, and the format's own errors for bad options, before changing
 * anything.
 */
export async function amendImage(image: ImageDevice, options: string): Promise<void> {
  const pairs = splitOptionString(options);
  switch (image.format) {
    case "qcow2":
      return amendQcow2Image(image, pairs);
    case "fvd":
      return amendFvdImage(image, pairs);
    default:
      throw new UnsupportedFeatureError(`Format driver '${image.format}' does not support option amendment`, {
        format: image.format,
        file: image.name,
      });
  }
}
