/**
 * Consistency check with optional repair (`vdisk check`), following qemu-img: after a repair
 * that fixed something the image is checked again, and the second result is reported with the
 * first one's repair counts.
 * @module
 */
import { throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import type { CheckResult, RepairMode } from "../core/format.js";

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

/** Options of {@link checkImage}. */
export interface CheckOptions extends Pick<OperationOptions, "signal"> {
  /** Repair what can be repaired (`-r leaks|all`); the image must be open read-write. */
  repair?: RepairMode;
}

/** True when the device's top image format implements a check (capability `check`). */
export function canCheck(device: BlockDevice): boolean {
  return device.capabilities.check;
}

/**
 * Checks (and with `repair`, repairs) the top image of `device`. The second argument may be the
 * repair mode itself (the form of earlier versions).
 */
export async function checkImage(device: BlockDevice, options: CheckOptions | RepairMode = {}): Promise<CheckOutcome> {
  const opts: CheckOptions = typeof options === "string" ? { repair: options } : options;
  const repair = opts.repair;
  throwIfAborted(opts.signal);
  if (!canCheck(device)) return { supported: false };
  const first = await device.check(repair);
  const messages = [...first.messages];
  if (repair && (first.leaksFixed > 0 || first.corruptionsFixed > 0)) {
    throwIfAborted(opts.signal);
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
