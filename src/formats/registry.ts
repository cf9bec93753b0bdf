/**
 * The list of format drivers vdisk knows, in probe order.
 * @module
 */
import type { FormatDriver } from "../core/format.js";
import { bochsDriver } from "./bochs/driver.js";
import { cloopDriver } from "./cloop/driver.js";
import { dmgDriver } from "./dmg/driver.js";
import { fvdDriver } from "./fvd/driver.js";
import { gow1Driver, gow2Driver } from "./gow/driver.js";
import { qcow2Driver } from "./qcow2/driver.js";
import { qcowDriver } from "./qcow/driver.js";
import { qedDriver } from "./qed/driver.js";
import { rawDriver } from "./raw/driver.js";
import { vhdDriver } from "./vhd/driver.js";
import { vdiDriver } from "./vdi/driver.js";
import { parallelsDriver } from "./parallels/driver.js";
import { vhdxDriver } from "./vhdx/driver.js";
import { vmdkDriver } from "./vmdk/driver.js";

/** Every built-in driver. Raw is last: it is the fallback of probing. */
export const builtinDrivers: FormatDriver[] = [qcow2Driver, vhdxDriver, vhdDriver, vdiDriver, parallelsDriver, gow1Driver, gow2Driver, fvdDriver, qcowDriver, qedDriver, vmdkDriver, bochsDriver, cloopDriver, dmgDriver, rawDriver];

/** Finds a driver by name or alias; `undefined` when unknown. */
export function findDriver(name: string, drivers: readonly FormatDriver[] = builtinDrivers): FormatDriver | undefined {
  const n = name.toLowerCase();
  return drivers.find((d) => d.name === n || d.aliases?.includes(n));
}
