/**
 * A subset of qemu-io's commands on any {@link BlockDevice} (`vdisk io -c CMD`): `read`,
 * `write`, `write -z`, `discard`, `flush`, with qemu-io's summaries and pattern checks.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import { parseSize } from "../core/options.js";
import { ioSizeStr, ioTimeStr } from "./number-format.js";

/** Where a command's output goes: `out` for summaries, `err` for failures. */
export interface IoCommandOutput {
  out(line: string): void;
  err(line: string): void;
}

/** The commands {@link runIoCommand} knows, with their usage. */
export const IO_COMMANDS: Readonly<Record<string, string>> = {
  read: "read [-P pattern] [-q] off len -- reads len bytes at off, optionally checking every byte is pattern",
  write: "write [-P pattern | -z [-u]] [-c] [-q] off len -- writes pattern (default 0xcd) or zeros",
  discard: "discard [-q] off len -- releases the range",
  flush: "flush -- makes every write durable",
};

/** A byte count or offset as qemu-io accepts it: decimal with k/M/G/T/P/E suffix, or hex. */
export function parseIoNumber(text: string): number {
  if (/^0x[0-9a-f]+$/i.test(text)) {
    const v = parseInt(text.slice(2), 16);
    if (!Number.isSafeInteger(v)) throw new RangeError(`Number '${text}' is too large`);
    return v;
  }
  return parseSize(text);
}

function parsePattern(text: string): number {
  const v = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(v >= 0 && v <= 255)) throw new RangeError(`Invalid pattern '${text}': expected a byte value`);
  return v;
}

interface Parsed {
  flags: Set<string>;
  pattern?: number;
  args: string[];
}

/** getopt for one command: `withValue` lists the letters that take a value. */
function parseCommandArgs(words: string[], allowed: string, withValue: string): Parsed {
  const flags = new Set<string>();
  const args: string[] = [];
  let pattern: number | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w.startsWith("-") && w.length > 1 && !/^-\d/.test(w)) {
      for (let j = 1; j < w.length; j++) {
        const c = w[j];
        if (!allowed.includes(c)) throw new RangeError(`invalid option -- '${c}'`);
        if (withValue.includes(c)) {
          const v = j + 1 < w.length ? w.slice(j + 1) : words[++i];
          if (v === undefined) throw new RangeError(`option requires an argument -- '${c}'`);
          if (c === "P") pattern = parsePattern(v);
          break;
        }
        flags.add(c);
      }
    } else args.push(w);
  }
  return { flags, pattern, args };
}

function summary(verb: string, offset: number, length: number, seconds: number): string[] {
  const t = Math.max(seconds, 1e-6);
  return [
    `${verb} ${length}/${length} bytes at offset ${offset}`,
    `${ioSizeStr(length)}, 1 ops; ${ioTimeStr(seconds)} (${ioSizeStr(length / t)}/sec and ${(1 / t).toFixed(4)} ops/sec)`,
  ];
}

function now(): number {
  return globalThis.performance.now() / 1000;
}

/**
 * Runs one command line on `device`. Returns false when the command failed (bad usage, an I/O
 * error, a pattern mismatch); the reason has been written to `output.err`.
 */
export async function runIoCommand(device: BlockDevice, line: string, output: IoCommandOutput): Promise<boolean> {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) return true;
  const [name, ...rest] = words;
  const need = (p: Parsed, n: number): boolean => {
    if (p.args.length !== n) {
      output.err(`bad argument count ${p.args.length} to ${name}, expected ${n} arguments`);
      return false;
    }
    return true;
  };
  let p: Parsed;
  try {
    switch (name) {
      case "read": {
        p = parseCommandArgs(rest, "PqC", "P");
        if (!need(p, 2)) return false;
        const offset = parseIoNumber(p.args[0]);
        const length = parseIoNumber(p.args[1]);
        const t0 = now();
        let buf: Uint8Array;
        try {
          buf = await device.read(offset, length);
        } catch (e) {
          output.err(`read failed: ${errorText(e)}`);
          return false;
        }
        const t1 = now();
        let ok = true;
        if (p.pattern !== undefined) {
          for (let i = 0; i < buf.length; i++) {
            if (buf[i] !== p.pattern) {
              output.out(`Pattern verification failed at offset ${offset}, ${length} bytes`);
              ok = false;
              break;
            }
          }
        }
        if (!p.flags.has("q")) for (const l of summary("read", offset, length, t1 - t0)) output.out(l);
        return ok;
      }
      case "write": {
        p = parseCommandArgs(rest, "PzucqC", "P");
        if (!need(p, 2)) return false;
        const offset = parseIoNumber(p.args[0]);
        const length = parseIoNumber(p.args[1]);
        if (p.flags.has("z") && p.pattern !== undefined) {
          output.err("-z and -P cannot be specified at the same time");
          return false;
        }
        if (p.flags.has("u") && !p.flags.has("z")) {
          output.err("-u requires -z to be specified");
          return false;
        }
        const t0 = now();
        try {
          if (p.flags.has("z")) await device.writeZeroes(offset, length, { unmap: p.flags.has("u") });
          else {
            const data = new Uint8Array(length).fill(p.pattern ?? 0xcd);
            if (p.flags.has("c")) await device.writeCompressed(offset, data);
            else await device.write(offset, data);
          }
        } catch (e) {
          output.err(`write failed: ${errorText(e)}`);
          return false;
        }
        if (!p.flags.has("q")) for (const l of summary("wrote", offset, length, now() - t0)) output.out(l);
        return true;
      }
      case "discard": {
        p = parseCommandArgs(rest, "q", "");
        if (!need(p, 2)) return false;
        const offset = parseIoNumber(p.args[0]);
        const length = parseIoNumber(p.args[1]);
        const t0 = now();
        try {
          await device.discard(offset, length);
        } catch (e) {
          output.err(`discard failed: ${errorText(e)}`);
          return false;
        }
        if (!p.flags.has("q")) for (const l of summary("discard", offset, length, now() - t0)) output.out(l);
        return true;
      }
      case "flush": {
        p = parseCommandArgs(rest, "", "");
        if (!need(p, 0)) return false;
        try {
          await device.flush();
        } catch (e) {
          output.err(`flush failed: ${errorText(e)}`);
          return false;
        }
        return true;
      }
      default:
        output.err(`command "${name}" not found`);
        return false;
    }
  } catch (e) {
    output.err(`${name}: ${errorText(e)}`);
    return false;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
