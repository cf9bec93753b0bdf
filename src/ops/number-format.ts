/**
 * Number formatting that matches qemu-img and qemu-io output byte for byte: C's `%.Ng`
 * (round-half-even on exact ties, as glibc does), sizes like "1.5 KiB", rates like "907.336 MiB".
 * @module
 */

/**
 * `x` (finite, non-zero) rounded to `digits` significant digits, with exact ties rounded to even
 * as glibc's printf does (JavaScript's `toPrecision` rounds them away from zero).
 */
function roundSignificant(x: number, digits: number): number {
  // toPrecision(100) is the exact decimal expansion of every double in the ranges printed here.
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(x.toPrecision(100));
  if (!m) return Number(x.toPrecision(digits));
  const intPart = m[2];
  const all = (intPart + (m[3] ?? "")).replace(/^0+/, "");
  const rest = all.slice(digits);
  if (/^50*$/.test(rest) && Number(all[digits - 1]) % 2 === 0) {
    // An exact tie with an even last digit: truncate instead of rounding up.
    const lead = intPart.replace(/^0+/, "").length;
    const scale = lead > 0 ? lead + Number(m[4] ?? 0) : -((m[3] ?? "").length - (m[3] ?? "").replace(/^0+/, "").length) + Number(m[4] ?? 0);
    return Number(`${m[1]}0.${all.slice(0, digits)}e${scale}`);
  }
  return Number(x.toPrecision(digits));
}

/** C's `printf("%.<precision>g", x)` for finite `x`. */
export function formatG(x: number, precision = 6): string {
  if (x === 0) return "0";
  const p = Math.max(1, precision);
  const rounded = roundSignificant(x, p);
  const exp = Number(rounded.toExponential().split("e")[1]);
  if (exp < -4 || exp >= p) {
    const [mant, e] = rounded.toExponential(p - 1).split("e");
    const m = mant.includes(".") ? mant.replace(/0+$/, "").replace(/\.$/, "") : mant;
    const n = Number(e);
    return `${m}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  const fixed = rounded.toFixed(Math.max(0, p - 1 - exp));
  return fixed.includes(".") ? fixed.replace(/0+$/, "").replace(/\.$/, "") : fixed;
}

/** C's `printf("%.<decimals>f", x)`, exact ties rounded to even as glibc does. */
export function formatF(x: number, decimals: number): string {
  if (!Number.isFinite(x)) return x > 0 ? "inf" : x < 0 ? "-inf" : "nan";
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(x.toFixed(Math.min(100, decimals + 60)));
  if (m) {
    const frac = m[3] ?? "";
    const rest = frac.slice(decimals);
    const last = decimals > 0 ? Number(frac[decimals - 1]) : Number(m[2][m[2].length - 1]);
    if (/^50*$/.test(rest) && last % 2 === 0) {
      const kept = decimals > 0 ? `${m[2]}.${frac.slice(0, decimals)}` : m[2];
      return `${m[1]}${kept}`;
    }
  }
  return x.toFixed(decimals);
}

const SIZE_SUFFIX = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/** qemu's human size: `0 B`, `452 KiB`, `1.5 MiB`, `100 GiB` (three significant digits). */
export function sizeToStr(bytes: number): string {
  // Move to the next unit once the value would print as 1000 or more in the current one.
  const scaled = bytes / (1000 / 1024);
  let i = 0;
  if (scaled >= 1) {
    const e = Math.floor(Math.log2(scaled)) + 1; // frexp exponent
    i = Math.min(SIZE_SUFFIX.length - 1, Math.floor((e - 1) / 10));
  }
  const div = 2 ** (i * 10);
  return `${formatG(bytes / div, 3)} ${SIZE_SUFFIX[i]}B`;
}

/** qemu-io's byte counts: `64 KiB`, `1.500 KiB`, `10 bytes` (three decimals, `.000` dropped). */
export function ioSizeStr(value: number): string {
  const units: Array<[number, string]> = [
    [2 ** 60, " EiB"],
    [2 ** 50, " PiB"],
    [2 ** 40, " TiB"],
    [2 ** 30, " GiB"],
    [2 ** 20, " MiB"],
    [2 ** 10, " KiB"],
  ];
  let suffix = " bytes";
  let v = value;
  for (const [u, s] of units) {
    if (value >= u) {
      suffix = s;
      v = value / u;
      break;
    }
  }
  const text = v.toFixed(3);
  return (text.endsWith(".000") ? text.slice(0, -4) : text) + suffix;
}

/** qemu-io's elapsed time: `00.00 sec`, `01:02.50`, `1:02:03.50`. */
export function ioTimeStr(seconds: number): string {
  const cs = Math.floor((seconds % 1) * 100);
  const whole = Math.floor(seconds);
  const two = (n: number): string => String(n).padStart(2, "0");
  if (whole >= 3600) return `${Math.floor(whole / 3600)}:${two(Math.floor((whole % 3600) / 60))}:${two(whole % 60)}.${two(cs)}`;
  if (whole >= 60) return `${two(Math.floor(whole / 60))}:${two(whole % 60)}.${two(cs)}`;
  return `${two(whole)}.${two(cs)} sec`;
}
