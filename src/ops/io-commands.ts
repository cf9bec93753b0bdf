/**
 * qemu-io's commands on any {@link BlockDevice} (`vdisk io -c CMD`), with qemu-io's result
 * lines, pattern checks and failures. The commands live in `./io/`; this module keeps the
 * entry points: {@link IO_COMMANDS}, {@link runIoCommand}, {@link createIoSession}.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import { MISC_COMMANDS } from "./io/misc.js";
import { IoSession, type IoCommandOutput, type IoCommandSpec, type IoSessionOptions } from "./io/session.js";
import { TRANSFER_COMMANDS } from "./io/transfer.js";

export { parseIoNumber } from "./io/args.js";
export { IoSession } from "./io/session.js";
export type { IoCommandOutput, IoCommandSpec, IoOpenRequest, IoSessionOptions } from "./io/session.js";

const SPECS = [...TRANSFER_COMMANDS, ...MISC_COMMANDS];
/** By name and by alias. */
const TABLE: ReadonlyMap<string, IoCommandSpec> = new Map([
  ...SPECS.map((c) => [c.name, c] as const),
  ...SPECS.flatMap((c) => (c.altname ? [[c.altname, c] as const] : [])),
]);

/** The commands vdisk io knows, with their usage as qemu-io's `help` shows it. */
export const IO_COMMANDS: Readonly<Record<string, string>> = Object.fromEntries(
  SPECS.map((c) => [c.name, `${c.name} ${c.args} -- ${c.oneline}`]),
);

/** A session on `device` (or none: `open` then gives one, through `options.open`). */
export function createIoSession(output: IoCommandOutput, options: IoSessionOptions = {}, device?: BlockDevice): IoSession {
  return new IoSession(TABLE, output, options, device);
}

/**
 * Runs one command line on `device` and completes any asynchronous request it started. Returns
 * false when the command failed (bad usage, an I/O error, a pattern mismatch); the reason has
 * been printed to `output`.
 */
export async function runIoCommand(device: BlockDevice, line: string, output: IoCommandOutput): Promise<boolean> {
  const session = createIoSession(output, {}, device);
  const ok = await session.run(line);
  return (await session.finish()) && ok;
}
