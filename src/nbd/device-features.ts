/**
 * What an export can do, read from its device. The one place the server asks the device about
 * its abilities, so that it switches to `BlockDevice.capabilities` (issue 9) in one edit.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import { ImageDevice } from "../core/image-device.js";

/** The abilities the NBD server advertises for a device. */
export interface NbdDeviceFeatures {
  readonly writable: boolean;
  /** TRIM releases space (otherwise it is not advertised). */
  readonly discard: boolean;
  /** Bytes of the format's allocation unit (1 when unknown). */
  readonly allocationUnit: number;
}

interface MaybeCapable {
  readonly capabilities?: { readonly write?: boolean; readonly discard?: boolean; readonly allocationUnit?: number };
}

/** Derives {@link NbdDeviceFeatures} from `device`. */
export function deviceFeatures(device: BlockDevice): NbdDeviceFeatures {
  const caps = (device as BlockDevice & MaybeCapable).capabilities;
  if (caps) {
    return {
      writable: !device.readOnly && caps.write !== false,
      discard: !device.readOnly && !!caps.discard,
      allocationUnit: caps.allocationUnit && caps.allocationUnit > 0 ? caps.allocationUnit : 1,
    };
  }
  const instance = device instanceof ImageDevice ? device.instance : undefined;
  return {
    writable: !device.readOnly,
    discard: !device.readOnly && !!instance?.discard,
    allocationUnit: instance?.allocationUnit ?? 1,
  };
}
