/**
 * Consistency check with optional repair (`vdisk check`), following qemu-img: after a repair
 * that fixed something the image is checked again, and the second result is reported with the
 * first one's repair counts.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { CheckResult, RepairMode } from "../core/format.js";
import { ImageDevice } from "../core/image-device.js";

/** The outcome of {@link checkImage}. */
export type CheckOutcome =
  | { readonly supported: false }
  | {
      readonly supported: true;
      /** The report to show (the re-check after a repair that fixed something). */
      readonly result: CheckResult;
      /** True when a repair fixed something and the image was checked again. */
      readonly repaired: boolean;
      /** Problem lines of every pass, in order. */
      readonly messages: string[];
    };

/** True when the device's top image format implements a check. */
export function canCheck(device: BlockDevice): boolean {
  return !(device instanceof ImageDevice) || typeof device.instance.check === "function";
}

/** Checks (and with `repair`, repairs) the top image of `device`. */
export async function checkImage(device: BlockDevice, repair?: RepairMode): Promise<CheckOutcome> {
  if (!canCheck(device)) return { supported: false };
  const first = await device.check(repair);
  const messages = [...first.messages];
  if (repair && (first.leaksFixed > 0 || first.corruptionsFixed > 0)) {
    const second = await device.check();
    messages.push(...second.messages);
    return {
      supported: true,
      repaired: true,
      messages,
      result: { ...second, leaksFixed: first.leaksFixed, corruptionsFixed: first.corruptionsFixed },
    };
  }
  return { supported: true, repaired: false, messages, result: first };
}
