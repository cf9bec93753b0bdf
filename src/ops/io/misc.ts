/**
 * qemu-io's other commands: `flush`, `aio_flush`, `map`, `alloc`, `length`, `info`,
 * `truncate`, `open`, `close`, `sleep`, `help`, `quit`.
 * @module
 */
import type { BlockDevice } from "../../core/block-device.js";
import { ioSizeStr } from "../number-format.js";
import { IoUsageError, getopt, parseIoNumber } from "./args.js";
import { errnoText } from "./report.js";
import type { IoCommandSpec, IoOpenRequest, IoSession } from "./session.js";
import { sectorSize } from "./transfer.js";

/** Every runtime vdisk runs in has setTimeout; the neutral type set does not declare it. */
const timers = globalThis as unknown as { setTimeout(fn: () => void, ms: number): unknown };

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Runs of [offset, length, allocated in the top image] over `offset..offset+length`. */
async function* allocationRuns(device: BlockDevice, offset: number, length: number): AsyncGenerator<[number, number, boolean]> {
  let run: [number, number, boolean] | undefined;
  for await (const e of device.extents(offset, length)) {
    const allocated = e.present && e.depth === 0;
    if (run && run[2] === allocated && run[0] + run[1] === e.offset) run[1] += e.length;
    else {
      if (run) yield run;
      run = [e.offset, e.length, allocated];
    }
  }
  if (run) yield run;
}

async function doMap(s: IoSession): Promise<boolean> {
  const device = s.image;
  for await (const [offset, length, allocated] of allocationRuns(device, 0, device.size)) {
    s.output.out(
      `${ioSizeStr(length)} (${hex(length)}) bytes ${allocated ? "    " : "not "}allocated at offset ` +
        `${ioSizeStr(offset)} (${hex(offset)})`,
    );
  }
  return true;
}

async function doAlloc(s: IoSession, words: readonly string[]): Promise<boolean> {
  const device = s.image;
  const offset = parseIoNumber(words[0]);
  const count = words.length > 1 ? parseIoNumber(words[1]) : 512;
  if (offset + count > device.size) {
    s.output.out(`alloc failed: Input/output error`);
    return false;
  }
  let allocatedBytes = 0;
  for await (const [, length, allocated] of allocationRuns(device, offset, count)) if (allocated) allocatedBytes += length;
  s.output.out(`${allocatedBytes}/${count} bytes allocated at offset ${ioSizeStr(offset)}`);
  return true;
}

async function doInfo(s: IoSession): Promise<boolean> {
  const device = s.image;
  s.output.out(`format name: ${device.format}`);
  const info = await device.info();
  if (info.clusterSize !== undefined) {
    s.output.out(`cluster size: ${ioSizeStr(info.clusterSize)}`);
    // qemu places the VM state after the guest data, at the first L1 entry past it (qcow2).
    const l2Coverage = device.format === "qcow2" ? info.clusterSize * (info.clusterSize / 8) : 0;
    const vmState = l2Coverage > 0 ? Math.ceil(device.size / l2Coverage) * l2Coverage : 0;
    s.output.out(`vm state offset: ${ioSizeStr(vmState)}`);
  }
  return true;
}

async function doTruncate(s: IoSession, words: readonly string[]): Promise<boolean> {
  const o = getopt("truncate", words, "m:");
  if (o.operands.length !== 1) throw new IoUsageError("", true);
  const mode = o.values.get("m") ?? "off";
  if (mode !== "off") throw new IoUsageError(`${s.options.programName ?? "qemu-io"}: Unsupported preallocation mode '${mode}'`);
  const size = parseIoNumber(o.operands[0]);
  const device = s.image;
  try {
    if (!device.resize || !device.capabilities.resize) {
      throw new IoUsageError(`${s.options.programName ?? "qemu-io"}: Image format driver does not support resize`);
    }
    await device.resize(size);
  } catch (e) {
    if (e instanceof IoUsageError) throw e;
    s.output.err(`${s.options.programName ?? "qemu-io"}: ${e instanceof Error ? e.message : errnoText(e)}`);
    return false;
  }
  return true;
}

async function doOpen(s: IoSession, words: readonly string[]): Promise<boolean> {
  const o = getopt("open", words, "rsCnkUt:d:o:");
  if (s.device) {
    s.output.err("file open already, try 'help close'");
    return false;
  }
  if (o.operands.length > 1) throw new IoUsageError("", true);
  let format = s.options.defaultFormat;
  let protocol: IoOpenRequest["protocol"];
  let filename: string | undefined;
  for (const pair of (o.values.get("o") ?? "").split(",").filter((p) => p !== "")) {
    const eq = pair.indexOf("=");
    const [k, v] = eq < 0 ? [pair, ""] : [pair.slice(0, eq), pair.slice(eq + 1)];
    if (k === "driver") {
      if (v === "file" || v === "host_device" || v === "host_cdrom") {
        protocol = v;
        format = "raw";
      } else format = v;
    } else if (k === "filename") filename = v;
  }
  const path = o.operands[0] ?? filename;
  // qemu-io names the device only when the path was an operand.
  const prefix = `${s.options.programName ?? "qemu-io"}: can't open${o.operands[0] !== undefined ? ` device ${path}` : ""}: `;
  if (path === undefined) throw new IoUsageError("", true);
  if (!s.options.open) {
    s.output.err(`${prefix}opening images is not available here`);
    return false;
  }
  try {
    s.device = await s.options.open({ path, readOnly: o.flags.has("r"), format, protocol });
  } catch (e) {
    s.output.err(`${prefix}${e instanceof Error ? e.message : String(e)}`);
    return false;
  }
  return true;
}

async function doClose(s: IoSession): Promise<boolean> {
  const device = s.image;
  s.device = undefined;
  await (s.options.close ? s.options.close(device) : device.close());
  return true;
}

async function doHelp(s: IoSession, words: readonly string[]): Promise<boolean> {
  const specs = words.length > 0 ? [s.commands.get(words[0])] : [...new Set(s.commands.values())].sort((a, b) => (a.name < b.name ? -1 : 1));
  if (specs[0] === undefined) {
    s.output.err(`command ${words[0]} not found`);
    return false;
  }
  for (const c of specs) if (c) s.output.out(`${c.name} ${c.args} -- ${c.oneline}`);
  if (words.length === 0) s.output.out("\nUse 'help commandname' for extended help.");
  return true;
}

const none = { argmin: 0, argmax: 0, needsFile: true, writes: false } as const;

/** The non-transfer commands. */
export const MISC_COMMANDS: readonly IoCommandSpec[] = [
  {
    ...none,
    name: "flush",
    altname: "f",
    args: "",
    oneline: "flush all in-core file state to disk",
    run: async (s) => {
      try {
        await s.image.flush();
      } catch (e) {
        s.output.out(`flush failed: ${errnoText(e)}`);
        return false;
      }
      return true;
    },
  },
  { ...none, name: "aio_flush", args: "", oneline: "completes all outstanding aio requests", run: (s) => s.drain() },
  { ...none, name: "map", args: "", oneline: "prints the allocated areas of a file", run: doMap },
  {
    ...none,
    argmin: 1,
    argmax: 2,
    name: "alloc",
    altname: "a",
    args: "offset [count]",
    oneline: "checks if offset is allocated in the file",
    run: doAlloc,
  },
  {
    ...none,
    name: "length",
    args: "",
    oneline: "gets the length of the current file",
    run: async (s) => {
      s.output.out(ioSizeStr(sectorSize(s.image.size)));
      return true;
    },
  },
  { ...none, name: "info", altname: "i", args: "", oneline: "prints information about the current file", run: doInfo },
  {
    ...none,
    argmin: 1,
    argmax: 3,
    writes: true,
    name: "truncate",
    altname: "t",
    args: "[-m prealloc_mode] off",
    oneline: "truncates the current file at the given offset",
    run: doTruncate,
  },
  {
    argmin: 1,
    argmax: -1,
    needsFile: false,
    writes: false,
    name: "open",
    altname: "o",
    args: "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
    oneline: "open the file specified by path",
    run: doOpen,
  },
  { ...none, name: "close", altname: "c", args: "", oneline: "close the current open file", run: doClose },
  {
    argmin: 1,
    argmax: 1,
    needsFile: false,
    writes: false,
    name: "sleep",
    args: "",
    oneline: "waits for the given value in milliseconds",
    run: async (s, w) => {
      const ms = parseIoNumber(w[0]);
      await (s.options.sleep ? s.options.sleep(ms) : new Promise<void>((r) => timers.setTimeout(r, ms)));
      return true;
    },
  },
  { argmin: 0, argmax: 1, needsFile: false, writes: false, name: "help", args: "[command]", oneline: "help for one or all commands", run: doHelp },
  {
    argmin: 0,
    argmax: 0,
    needsFile: false,
    writes: false,
    name: "quit",
    altname: "q",
    args: "",
    oneline: "exit the program",
    run: async (s) => {
      s.quit = true;
      return true;
    },
  },
];
