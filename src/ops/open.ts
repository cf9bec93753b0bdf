/**
 * Opening and creating images on any {@link IoBackend} with the built-in drivers (and any the
 * caller adds first). The work is done by `ops/open-core.ts`, which names no driver.
 * @module
 */
import type { FormatDriver, ProbeInput } from "../core/format.js";
import type { ImageDevice } from "../core/image-device.js";
import type { IoBackend } from "../io/backend.js";
import { builtinDrivers } from "../formats/registry.js";
import * as core from "./open-core.js";
import type { CreateImageOptions, OpenImageOptions } from "./open-core.js";

export { readProbeInput, type CreateImageOptions, type OpenImageOptions } from "./open-core.js";

function withBuiltins<T extends { drivers?: FormatDriver[] }>(options: T): T {
  return { ...options, drivers: options.drivers ? [...options.drivers, ...builtinDrivers] : builtinDrivers };
}

/** The best-scoring driver for `input`; the fallback driver (raw) when no other matches. */
export function probeFormat(input: ProbeInput, drivers: readonly FormatDriver[] = builtinDrivers): FormatDriver {
  return core.probeFormat(input, drivers);
}

/**
 * Opens the image stored in `io` and its backing chain. The returned device owns `io` and
 * closes it. Throws {@link ImageError} for anything wrong with the image.
 */
export function openImageOn(io: IoBackend, options: OpenImageOptions = {}): Promise<ImageDevice> {
  return core.openImageOn(io, withBuiltins(options));
}

/**
 * Creates an image in `io` (which must be empty and writable) and returns it opened
 * read-write. The device owns `io`.
 */
export function createImageOn(io: IoBackend, options: CreateImageOptions): Promise<ImageDevice> {
  return core.createImageOn(io, withBuiltins(options));
}
