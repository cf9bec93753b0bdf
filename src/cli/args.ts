/**
 * Command-line parsing with GNU getopt semantics (what qemu-img uses): clustered short flags
 * (`-pq`), attached or separate values (`-fqcow2`, `-f qcow2`), `--long=value` and
 * `--long value`, options after operands, `--` ending options.
 * @module
 */
import { UsageError } from "./errors.js";

/** One option a command accepts. */
export interface OptionSpec {
  /** Key the parsed value is stored under. */
  readonly key: string;
  /** Single-letter form, e.g. `f` for `-f`. */
  readonly short?: string;
  /** Long form without dashes, e.g. `output` for `--output`. */
  readonly long?: string;
  /** Takes a value. */
  readonly value?: boolean;
  /** May be given several times (values are collected in order). */
  readonly repeat?: boolean;
}

/** Parsed arguments: option values by key (flags are `true`) and the operands in order. */
export interface ParsedArgs {
  readonly options: Map<string, string | true>;
  /** Every value of repeatable options, in order. */
  readonly lists: Map<string, string[]>;
  readonly operands: string[];
}

/** Parses `argv` against `specs`. Throws {@link UsageError} on unknown options or missing values. */
export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const options = new Map<string, string | true>();
  const lists = new Map<string, string[]>();
  const operands: string[] = [];
  const set = (spec: OptionSpec, value: string | true): void => {
    options.set(spec.key, value);
    if (spec.repeat && typeof value === "string") {
      const l = lists.get(spec.key) ?? [];
      l.push(value);
      lists.set(spec.key, l);
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      // Unambiguous prefixes are accepted, as getopt_long does.
      const exact = specs.find((s) => s.long === name);
      const prefixed = specs.filter((s) => s.long?.startsWith(name));
      const spec = exact ?? (prefixed.length === 1 ? prefixed[0] : undefined);
      if (!spec || name === "") {
        if (prefixed.length > 1) throw new UsageError(`option '--${name}' is ambiguous`);
        throw new UsageError(`unrecognized option '${arg}'`);
      }
      if (spec.value) {
        if (eq >= 0) set(spec, arg.slice(eq + 1));
        else if (i + 1 < argv.length) set(spec, argv[++i]);
        else throw new UsageError(`option '--${spec.long}' requires an argument`);
      } else {
        if (eq >= 0) throw new UsageError(`option '--${spec.long}' doesn't allow an argument`);
        set(spec, true);
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j];
        const spec = specs.find((s) => s.short === c);
        if (!spec) throw new UsageError(`invalid option -- '${c}'`);
        if (spec.value) {
          if (j + 1 < arg.length) set(spec, arg.slice(j + 1));
          else if (i + 1 < argv.length) set(spec, argv[++i]);
          else throw new UsageError(`option requires an argument -- '${c}'`);
          break;
        }
        set(spec, true);
      }
      continue;
    }
    operands.push(arg);
  }
  return { options, lists, operands };
}

/** The string value of `key`, if given. */
export function optString(args: ParsedArgs, key: string): string | undefined {
  const v = args.options.get(key);
  return typeof v === "string" ? v : undefined;
}

/** True when the flag `key` was given. */
export function optFlag(args: ParsedArgs, key: string): boolean {
  return args.options.has(key);
}
