/**
 * A schema-driven codec for fixed-size on-disk structures: one field list per structure drives
 * decode, encode and size, so there is no second hand-kept list that can drift.
 *
 * Fields are laid out one after the other in list order; `at` documents the spec's offset and
 * is checked when the codec is defined, so a missing or mis-sized field fails at import time.
 * @module
 */
import { CorruptImageError } from "../errors.js";

/**
 * A u64 field of an on-disk structure holds a value at or above 2^53, which a byte offset or
 * size held as a `number` cannot represent. An {@link ImageError} (`ERR_CORRUPT_IMAGE`) whose
 * `structure` is the structure's name, so bad input never surfaces as a bare `RangeError`.
 */
export class FieldOverflowError extends CorruptImageError {
  /** The field's name in the structure's field list. */
  readonly field: string;

  constructor(structure: string, field: string, hi: number, lo: number) {
    const hex = `0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}`;
    super(`${structure} field ${field} = ${hex} exceeds 2^53`, { structure });
    this.name = "FieldOverflowError";
    this.field = field;
  }
}


/**
 * The kinds of field:
 * - `u8` `u16` `u32` `u64`: unsigned integers in the structure's byte order, decoded to `number`.
 *   A `u64` above 2^53 − 1 makes `decode` throw a {@link FieldOverflowError} (an ImageError)
 *   naming the structure and the field.
 * - `u64x`: like `u64`, but the all-ones value (a "none" marker in several formats) decodes to −1
 *   and −1 encodes back to all-ones.
 * - `bytes`: `length` raw bytes, decoded to a copy (reserved areas are kept and written back).
 * - `ascii`: `length` bytes as Latin-1 text, NULs included (compare with the exact magic).
 */
export type FieldKind = "u8" | "u16" | "u32" | "u64" | "u64x" | "bytes" | "ascii";

/** One field of a structure. */
export interface FieldDef {
  readonly name: string;
  readonly kind: FieldKind;
  /** Byte length; required for `bytes` and `ascii`, implied by the others. */
  readonly length?: number;
  /** The offset the spec documents; checked against the computed layout. */
  readonly at?: number;
}

type ValueOf<K extends FieldKind> = K extends "bytes" ? Uint8Array : K extends "ascii" ? string : number;

/** The decoded value of a structure described by the field list `F`. */
export type StructValue<F extends readonly FieldDef[]> = {
  -readonly [D in F[number] as D["name"]]: ValueOf<D["kind"]>;
};

/** Options of {@link StructCodec.decode}. */
export interface DecodeOptions {
  /**
   * A `u64` above 2^53 − 1 decodes to `Infinity` instead of throwing: for headers whose checks
   * must run in a set order (magic first) and reject such values themselves.
   */
  readonly u64Overflow?: "throw" | "infinity";
}

/** Decodes and encodes one structure. */
export interface StructCodec<T> {
  /** The structure's name, used in error messages. */
  readonly name: string;
  /** Encoded size in bytes. */
  readonly size: number;
  readonly littleEndian: boolean;
  /** Byte offset of a field inside the structure. */
  offsetOf(field: keyof T & string): number;
  /**
   * Decodes the structure at `at` of `buf` (which must hold `size` bytes from there; a
   * `RangeError` otherwise). `bytes` fields are copies; `buf` is not kept.
   */
  decode(buf: Uint8Array, at?: number, options?: DecodeOptions): T;
  /**
   * Encodes `value` into `into` at `at` (a new zeroed buffer of `size` bytes when `into` is
   * absent) and returns the buffer written. Integers out of their field's range and texts or
   * byte arrays longer than their field throw `RangeError`; shorter ones are zero-padded.
   */
  encode(value: T, into?: Uint8Array, at?: number): Uint8Array;
}

const WIDTH: Record<FieldKind, number> = { u8: 1, u16: 2, u32: 4, u64: 8, u64x: 8, bytes: 0, ascii: 0 };
const TWO32 = 4294967296;

interface Placed {
  readonly def: FieldDef;
  readonly offset: number;
  readonly width: number;
}

/**
 * Defines a structure codec from its field list (`as const` not needed: names and kinds are
 * inferred literally). `size`, when given, must equal the sum of the field widths.
 */
export function defineStruct<const F extends readonly FieldDef[]>(
  name: string,
  endian: "le" | "be",
  fields: F,
  size?: number,
): StructCodec<StructValue<F>> {
  const placed: Placed[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const def of fields) {
    if (names.has(def.name)) throw new Error(`${name}: duplicate field ${def.name}`);
    names.add(def.name);
    const width = WIDTH[def.kind] || def.length;
    if (!width || (def.length !== undefined && WIDTH[def.kind] && def.length !== WIDTH[def.kind])) {
      throw new Error(`${name}.${def.name}: missing or inconsistent length`);
    }
    if (def.at !== undefined && def.at !== offset) {
      throw new Error(`${name}.${def.name}: documented at ${def.at} but laid out at ${offset}`);
    }
    placed.push({ def, offset, width });
    offset += width;
  }
  if (size !== undefined && size !== offset) throw new Error(`${name}: fields cover ${offset} bytes, expected ${size}`);
  const total = offset;
  const le = endian === "le";
  const byName = new Map(placed.map((p) => [p.def.name, p]));

  function view(buf: Uint8Array, at: number): DataView {
    if (!Number.isInteger(at) || at < 0 || at + total > buf.length) {
      throw new RangeError(`${name}: needs ${total} bytes at ${at}, buffer has ${buf.length}`);
    }
    return new DataView(buf.buffer, buf.byteOffset + at, total);
  }

  return {
    name,
    size: total,
    littleEndian: le,
    offsetOf(field) {
      const p = byName.get(field);
      if (!p) throw new Error(`${name}: no field ${field}`);
      return p.offset;
    },
    decode(buf, at = 0, options = {}) {
      const dv = view(buf, at);
      const out: Record<string, number | string | Uint8Array> = {};
      for (const { def, offset: o, width } of placed) {
        switch (def.kind) {
          case "u8":
            out[def.name] = dv.getUint8(o);
            break;
          case "u16":
            out[def.name] = dv.getUint16(o, le);
            break;
          case "u32":
            out[def.name] = dv.getUint32(o, le);
            break;
          case "u64":
          case "u64x": {
            const hi = dv.getUint32(le ? o + 4 : o, le);
            const lo = dv.getUint32(le ? o : o + 4, le);
            if (def.kind === "u64x" && hi === 0xffffffff && lo === 0xffffffff) {
              out[def.name] = -1;
            } else if (hi > 0x1fffff) {
              if (options.u64Overflow === "infinity") {
                out[def.name] = Infinity;
                break;
              }
              throw new FieldOverflowError(name, def.name, hi, lo);
            } else {
              out[def.name] = hi * TWO32 + lo;
            }
            break;
          }
          case "bytes":
            out[def.name] = buf.slice(at + o, at + o + width);
            break;
          case "ascii": {
            let s = "";
            for (let i = 0; i < width; i++) s += String.fromCharCode(buf[at + o + i]);
            out[def.name] = s;
            break;
          }
        }
      }
      return out as StructValue<F>;
    },
    encode(value, into, at = 0) {
      const buf = into ?? new Uint8Array(total);
      const dv = view(buf, at);
      const rec = value as Record<string, number | string | Uint8Array>;
      for (const { def, offset: o, width } of placed) {
        const v = rec[def.name];
        const bad = (why: string): never => {
          throw new RangeError(`${name}.${def.name}: ${why}`);
        };
        if (def.kind === "bytes") {
          if (!(v instanceof Uint8Array)) bad("expected bytes");
          const b = v as Uint8Array;
          if (b.length > width) bad(`${b.length} bytes do not fit in ${width}`);
          buf.fill(0, at + o, at + o + width);
          buf.set(b, at + o);
          continue;
        }
        if (def.kind === "ascii") {
          if (typeof v !== "string") bad("expected text");
          const s = v as string;
          if (s.length > width) bad(`'${s}' is longer than ${width} bytes`);
          for (let i = 0; i < width; i++) {
            const c = i < s.length ? s.charCodeAt(i) : 0;
            if (c > 0xff) bad("text is not Latin-1");
            buf[at + o + i] = c;
          }
          continue;
        }
        if (typeof v !== "number" || !Number.isInteger(v)) bad(`expected an integer, got ${String(v)}`);
        const n = v as number;
        if (def.kind === "u64x" && n === -1) {
          dv.setUint32(o, 0xffffffff);
          dv.setUint32(o + 4, 0xffffffff);
          continue;
        }
        const max = width === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (width * 8) - 1;
        if (n < 0 || n > max) bad(`${n} is out of range`);
        switch (width) {
          case 1:
            dv.setUint8(o, n);
            break;
          case 2:
            dv.setUint16(o, n, le);
            break;
          case 4:
            dv.setUint32(o, n, le);
            break;
          default: {
            const hi = Math.floor(n / TWO32);
            const lo = n >>> 0;
            dv.setUint32(le ? o + 4 : o, hi, le);
            dv.setUint32(le ? o : o + 4, lo, le);
          }
        }
      }
      return buf;
    },
  };
}
