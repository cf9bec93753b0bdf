/**
 * JSON text the way qemu-img prints it, so scripts that compare or grep qemu-img's output keep
 * working: 4-space indentation, object members in QEMU's QDict iteration order (a hash of the
 * key modulo 512 buckets, later insertions first within a bucket), non-ASCII escaped as `\uXXXX`.
 * @module
 */

import type { QJson } from "../ops/info.js";

export type { QJson };

const BUCKETS = 512;

/** The bucket QEMU's QDict puts `key` in (its tdb-derived string hash). */
function bucketOf(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let v = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    v = (v + ((bytes[i] << ((i * 5) % 24)) >>> 0)) >>> 0;
  }
  return ((Math.imul(1103515243, v) + 12345) >>> 0) % BUCKETS;
}

/** Keys in the order QEMU iterates a dict built by inserting them in `keys` order. */
export function qdictOrder(keys: readonly string[]): string[] {
  return keys
    .map((k, i) => ({ k, i, b: bucketOf(k) }))
    .sort((x, y) => x.b - y.b || y.i - x.i)
    .map((x) => x.k);
}

/** Quotes a string as QEMU's JSON writer does. */
export function qjsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"': out += '\\"'; break;
      case "\\": out += "\\\\"; break;
      case "\b": out += "\\b"; break;
      case "\f": out += "\\f"; break;
      case "\n": out += "\\n"; break;
      case "\r": out += "\\r"; break;
      case "\t": out += "\\t"; break;
      default:
        if (cp > 0xffff) {
          const v = cp - 0x10000;
          out += `\\u${hex4(0xd800 + (v >> 10))}\\u${hex4(0xdc00 + (v & 0x3ff))}`;
        } else if (cp < 0x20 || cp >= 0x7f) {
          out += `\\u${hex4(cp)}`;
        } else {
          out += ch;
        }
    }
  }
  return out + '"';
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, "0");
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return "null";
  if (typeof v === "string") return qjsonString(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Number.isInteger(v)) return String(v);
  // QEMU prints doubles with %.17g; none of the fields the CLI prints are fractional.
  return String(v);
}

function write(v: QJson, level: number): string {
  if (v === null || typeof v !== "object") return scalar(v);
  const pad = " ".repeat(level * 4);
  const inner = " ".repeat((level + 1) * 4);
  if (Array.isArray(v)) {
    const items = v.map((x) => `\n${inner}${write(x, level + 1)}`);
    return `[${items.join(",")}\n${pad}]`;
  }
  const keys = qdictOrder(Object.keys(v).filter((k) => v[k] !== undefined));
  const members = keys.map((k) => `\n${inner}${qjsonString(k)}: ${write(v[k]!, level + 1)}`);
  return `{${members.join(",")}\n${pad}}`;
}

/** `value` as qemu-img's pretty JSON (no trailing newline). */
export function toQemuJson(value: QJson): string {
  return write(value, 0);
}
