/**
 * qemu-io's argument conventions: numbers with size suffixes (`cvtnum`), byte patterns, and
 * getopt as glibc does it (options may follow operands; `--` ends them; `-1` is an option).
 * @module
 */

/** A command-line mistake; `usage` asks for the command's usage line after the message. */
export class IoUsageError extends Error {
  constructor(message: string, readonly usage = false, readonly toStdout = false) {
    super(message);
    this.name = "IoUsageError";
  }
}

const SUFFIX_SHIFT: Readonly<Record<string, number>> = { b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

/**
 * A byte count or offset as qemu-io's `cvtnum` accepts it: decimal (a fraction allowed with a
 * suffix), hex `0x…`, optional suffix B/K/M/G/T/P/E in either case. Throws {@link IoUsageError}
 * with qemu-io's "Parsing error" text.
 */
export function parseIoNumber(text: string): number {
  const m = /^(0x[0-9a-f]+|\d+(?:\.\d*)?|\.\d+)([bkmgtpe]?)$/i.exec(text);
  if (!m || (m[1].includes(".") && m[2] === "") || (/^0x/i.test(m[1]) && m[2] !== "")) {
    throw new IoUsageError(`Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- ${text}`, false, true);
  }
  const base = /^0x/i.test(m[1]) ? parseInt(m[1].slice(2), 16) : Number(m[1]);
  const v = Math.floor(base * 2 ** SUFFIX_SHIFT[m[2].toLowerCase() || "b"]);
  if (!Number.isSafeInteger(v) || v > 2 ** 63 - 1) {
    throw new IoUsageError(`Parsing error: argument too large -- ${text}`, false, true);
  }
  return v;
}

/** A `-P` pattern: a byte value, decimal or hex. */
export function parsePattern(text: string): number {
  const m = /^(0x[0-9a-f]+|\d+)$/i.exec(text);
  const v = !m ? NaN : /^0x/i.test(text) ? parseInt(text.slice(2), 16) : Number(text);
  if (!(v >= 0 && v <= 255)) throw new IoUsageError(`${text} is not a valid pattern byte`, false, true);
  return v;
}

/** Options found by {@link getopt}: flags as `true`, valued options by letter. */
export interface GetoptResult {
  readonly flags: ReadonlySet<string>;
  readonly values: ReadonlyMap<string, string>;
  readonly operands: readonly string[];
}

/**
 * glibc getopt on one command's words. `spec` is getopt's option string ("P:qv" …).
 * Throws {@link IoUsageError} (with `usage`) for an unknown option or a missing value.
 */
export function getopt(command: string, words: readonly string[], spec: string): GetoptResult {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const operands: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === "--") {
      operands.push(...words.slice(i + 1));
      break;
    }
    if (!w.startsWith("-") || w.length === 1) {
      operands.push(w);
      continue;
    }
    for (let j = 1; j < w.length; j++) {
      const c = w[j];
      const at = spec.indexOf(c);
      if (at < 0 || c === ":") throw new IoUsageError(`${command}: invalid option -- '${c}'`, true);
      if (spec[at + 1] === ":") {
        const v = j + 1 < w.length ? w.slice(j + 1) : words[++i];
        if (v === undefined) throw new IoUsageError(`${command}: option requires an argument -- '${c}'`, true);
        values.set(c, v);
        break;
      }
      flags.add(c);
    }
  }
  return { flags, values, operands };
}
