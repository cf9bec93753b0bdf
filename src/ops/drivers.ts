/**
 * The driver registry as seen by the layers above the operations (streams, faces): lookups by
 * name, with caller-supplied drivers tried first.
 * @module
 */
import type { FormatDriver } from "../core/format.js";
import { builtinDrivers, findDriver } from "../formats/registry.js";

/** `extra` followed by the built-in drivers. */
export function driverList(extra: readonly FormatDriver[] = []): readonly FormatDriver[] {
  return extra.length ? [...extra, ...builtinDrivers] : builtinDrivers;
}

/** The driver named `name` (or an alias) among `drivers`; `undefined` when unknown. */
export function lookupDriver(
  name: string,
  drivers: readonly FormatDriver[] = builtinDrivers,
): FormatDriver | undefined {
  return findDriver(name, drivers);
}
