/**
 * Parsing of `-o name=value,...` create options and size strings.
 * @module
 */
import { ImageError } from "../errors.js";
import type { CreateOptionSpec, CreateOptionValues } from "./format.js";

const SUFFIX: Record<string, number> = { "": 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };

/**
 * Parses a size as qemu-img does: a byte count with an optional k/M/G/T/P/E suffix (binary),
 * decimals allowed with a suffix (`1.5G`). Throws `RangeError` on anything else.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgtpe]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`Invalid size '${text}': expected a number with an optional k, M, G, T, P or E suffix`);
  const n = Number(m[1]) * SUFFIX[m[2].toLowerCase()];
  const v = Math.floor(n);
  if (!Number.isSafeInteger(v)) throw new RangeError(`Size '${text}' is too large`);
  return v;
}

function parseBool(name: string, text: string): boolean {
  if (/^(on|yes|true|1)$/i.test(text)) return true;
  if (/^(off|no|false|0)$/i.test(text)) return false;
  throw new ImageError("ERR_INVALID_OPTION", `Invalid value '${text}' for option ${name}: expected on or off`);
}

/**
 * Splits `a=1,b=2` (`,,` escapes a comma, as qemu) into pairs. Later duplicates win.
 */
export function splitOptionString(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let cur = "";
  const items: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "," && text[i + 1] === ",") {
      cur += ",";
      i++;
    } else if (c === ",") {
      items.push(cur);
      cur = "";
    } else cur += c;
  }
  items.push(cur);
  for (const item of items) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq < 0) out.push([item, "on"]);
    else out.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

/**
 * Checks and converts raw option pairs against a driver's specs. Unknown names give
 * `ERR_INVALID_OPTION` naming the format's valid options.
 */
export function parseCreateOptions(
  format: string,
  specs: readonly CreateOptionSpec[],
  raw: Iterable<[string, string | number | boolean]>,
): CreateOptionValues {
  const out: Record<string, string | number | boolean> = {};
  for (const [name, value] of raw) {
    const spec = specs.find((s) => s.name === name);
    if (!spec) {
      const known = specs.map((s) => s.name).join(", ") || "none";
      throw new ImageError("ERR_INVALID_OPTION", `Invalid option '${name}' for format ${format} (valid: ${known})`);
    }
    if (typeof value !== "string") {
      out[name] = value;
      continue;
    }
    switch (spec.type) {
      case "size":
        try {
          out[name] = parseSize(value);
        } catch {
          throw new ImageError("ERR_INVALID_OPTION", `Invalid size '${value}' for option ${name}`);
        }
        break;
      case "number": {
        const n = Number(value);
        if (!Number.isFinite(n) || value.trim() === "") {
          throw new ImageError("ERR_INVALID_OPTION", `Invalid number '${value}' for option ${name}`);
        }
        out[name] = n;
        break;
      }
      case "bool":
        out[name] = parseBool(name, value);
        break;
      case "enum":
        if (!spec.values?.includes(value)) {
          throw new ImageError(
            "ERR_INVALID_OPTION",
            `Invalid value '${value}' for option ${name} (valid: ${spec.values?.join(", ")})`,
          );
        }
        out[name] = value;
        break;
      default:
        out[name] = value;
    }
  }
  return out;
}
