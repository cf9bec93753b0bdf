/**
 * What an export can do, read from its device's capabilities: the one place the server asks.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";

/** The abilities the NBD server advertises for a device. */
export interface NbdDeviceFeatures {
  readonly writable: boolean;
  /** TRIM releases space (otherwise it is not advertised). */
  readonly discard: boolean;
  /** Bytes of the format's allocation unit (1 when unknown). */
  readonly allocationUnit: number;
}

/** Derives {@link NbdDeviceFeatures} from `device.capabilities`. */
export function deviceFeatures(device: BlockDevice): NbdDeviceFeatures {
  const caps = device.capabilities;
  const writable = !device.readOnly && caps.write;
  return {
    writable,
    discard: writable && caps.discard,
    allocationUnit: caps.allocationUnit > 0 ? caps.allocationUnit : 1,
  };
}
