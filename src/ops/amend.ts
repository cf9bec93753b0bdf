/**
 * Changing options of an existing image (`vdisk amend -o …`): the format's driver says which
 * options it takes (qcow2: qemu-img amend's; FVD: the header attributes of its own `qemu-img
 * update`); other formats have none, as with qemu-img.
 * @module
 */
import { throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import type { CreateOptionSpec, FormatDriver } from "../core/format.js";
import { splitOptionString } from "../core/options.js";
import { UnsupportedFeatureError } from "../errors.js";
import { builtinDrivers, findDriver } from "../formats/registry.js";

/**
 * The options `amend` takes for the format named `format`, sorted as the driver lists them;
 * `undefined` when it takes none (or the format is unknown).
 */
export function amendOptions(format: string, drivers: readonly FormatDriver[] = builtinDrivers): readonly CreateOptionSpec[] | undefined {
  const specs = findDriver(format, drivers)?.amendOptions;
  return specs && specs.length > 0 ? specs : undefined;
}

/** Options of {@link amendImage}. */
export type AmendOptions = Pick<OperationOptions, "signal">;

/**
 * Applies `options` (`"key=val,…"` with `,,` escaping a comma, or pairs) to `image`, open
 * read-write. Throws `ERR_UNSUPPORTED_FEATURE` ("Format driver 'X' does not support option
 * amendment") for formats without amendable options, and the format's own errors for bad
 * options, before changing anything.
 */
export async function amendImage(
  image: BlockDevice,
  options: string | ReadonlyArray<readonly [string, string]>,
  callOptions: AmendOptions = {},
): Promise<void> {
  throwIfAborted(callOptions.signal);
  const pairs = typeof options === "string" ? splitOptionString(options) : options;
  if (!image.amend) {
    throw new UnsupportedFeatureError(`Format driver '${image.format}' does not support option amendment`, {
      format: image.format,
    });
  }
  await image.amend(pairs, { signal: callOptions.signal });
}
