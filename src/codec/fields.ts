/**
 * A schema-driven codec for fixed-layout on-disk structures: one field list per structure
 * drives decode, encode and size, so the three can never drift apart.
 *
 * Integers up to 64 bits decode to `number`; a `u64` whose value is 2^53 or more throws a
 * {@link FieldRangeError} naming the field (callers turn it into an image error with their own
 * wording). Feature bitmaps, whose high bits are meaningful, use `bits64` and decode to `bigint`
 * (headers only, never a hot path).
 * @module
 */

/** The integer types a field may have. All are unsigned. */
export type FieldType = "u8" | "u16" | "u32" | "u64" | "bits64";

/** One field of a structure. */
export interface FieldSpec {
  /** Name in the decoded object. */
  readonly name: string;
  /** Byte offset from the start of the structure. */
  readonly offset: number;
  readonly type: FieldType;
}

type ValueOf<T extends FieldType> = T extends "bits64" ? bigint : number;

/** The decoded form of a structure described by the field list `F`. */
export type StructValues<F extends readonly FieldSpec[]> = {
  -readonly [K in F[number] as K["name"]]: ValueOf<K["type"]>;
};

const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, u64: 8, bits64: 8 };

/** A `u64` field holds a value that is not exact as a JavaScript number (2^53 or more). */
export class FieldRangeError extends RangeError {
  /** The field's name in its field list. */
  readonly field: string;
  /** The raw value as `0x…` hex text, for messages. */
  readonly hex: string;
  constructor(field: string, hex: string) {
    super(`Field ${field} value ${hex} exceeds 2^53`);
    this.name = "FieldRangeError";
    this.field = field;
    this.hex = hex;
  }
}

/** Bytes covered by the field list (the end of its last field). */
export function structSize(fields: readonly FieldSpec[]): number {
  let end = 0;
  for (const f of fields) end = Math.max(end, f.offset + WIDTH[f.type]);
  return end;
}

/** Hex text of the u64 at `offset` (for messages about values that are not exact numbers). */
export function u64Hex(view: DataView, offset: number, littleEndian: boolean): string {
  const hi = view.getUint32(offset + (littleEndian ? 4 : 0), littleEndian);
  const lo = view.getUint32(offset + (littleEndian ? 0 : 4), littleEndian);
  return `0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}`.replace(/^0x0+(?=[0-9a-f])/, "0x");
}

/**
 * Reads a u64 as a number. Throws {@link FieldRangeError} (named `field`) when it is 2^53 or more.
 */
export function readU64(view: DataView, offset: number, littleEndian: boolean, field = "u64"): number {
  const hi = view.getUint32(offset + (littleEndian ? 4 : 0), littleEndian);
  const lo = view.getUint32(offset + (littleEndian ? 0 : 4), littleEndian);
  if (hi >= 0x200000) throw new FieldRangeError(field, u64Hex(view, offset, littleEndian));
  return hi * 0x100000000 + lo;
}

/** Writes `value` (an integer in [0, 2^53)) as a u64. */
export function writeU64(view: DataView, offset: number, value: number, littleEndian: boolean): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`Cannot encode ${value} as a u64`);
  const hi = Math.floor(value / 0x100000000);
  const lo = value >>> 0;
  view.setUint32(offset + (littleEndian ? 4 : 0), hi, littleEndian);
  view.setUint32(offset + (littleEndian ? 0 : 4), lo, littleEndian);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes the structure at the start of `bytes` (which must hold {@link structSize} bytes).
 * Throws {@link FieldRangeError} for a `u64` of 2^53 or more.
 */
export function decodeStruct<F extends readonly FieldSpec[]>(
  fields: F,
  bytes: Uint8Array,
  littleEndian: boolean,
): StructValues<F> {
  const v = viewOf(bytes);
  const out: Record<string, number | bigint> = {};
  for (const f of fields) {
    switch (f.type) {
      case "u8":
        out[f.name] = v.getUint8(f.offset);
        break;
      case "u16":
        out[f.name] = v.getUint16(f.offset, littleEndian);
        break;
      case "u32":
        out[f.name] = v.getUint32(f.offset, littleEndian);
        break;
      case "u64":
        out[f.name] = readU64(v, f.offset, littleEndian, f.name);
        break;
      case "bits64":
        out[f.name] = v.getBigUint64(f.offset, littleEndian);
        break;
    }
  }
  return out as StructValues<F>;
}

/** Encodes `values` into the start of `into` (which must hold {@link structSize} bytes). */
export function encodeStruct<F extends readonly FieldSpec[]>(
  fields: F,
  values: StructValues<F>,
  into: Uint8Array,
  littleEndian: boolean,
): void {
  const v = viewOf(into);
  const vals = values as Record<string, number | bigint>;
  for (const f of fields) {
    const x = vals[f.name];
    switch (f.type) {
      case "u8":
        v.setUint8(f.offset, Number(x));
        break;
      case "u16":
        v.setUint16(f.offset, Number(x), littleEndian);
        break;
      case "u32":
        v.setUint32(f.offset, Number(x), littleEndian);
        break;
      case "u64":
        writeU64(v, f.offset, Number(x), littleEndian);
        break;
      case "bits64":
        v.setBigUint64(f.offset, BigInt(x), littleEndian);
        break;
    }
  }
}
