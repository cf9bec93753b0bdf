/**
 * `vdisk info` output: qemu-img's JSON object and its human text for one image.
 * @module
 */
import type { SnapshotInfo } from "../core/format.js";
import type { ImageInfo } from "../ops/info.js";
import { sizeToStr } from "../ops/number-format.js";
import { qdictOrder, type QJson } from "./qemu-json.js";

/** Converts a driver's `format-specific` data (plain JSON-like values) into printable JSON. */
export function toQJson(v: unknown): QJson | undefined {
  if (v === null) return null;
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "bigint":
      return Number(v);
    case "object": {
      if (Array.isArray(v)) return v.map((x) => toQJson(x) ?? null);
      const out: { [k: string]: QJson | undefined } = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = toQJson(x);
      return out;
    }
    default:
      return undefined;
  }
}

function snapshotJson(s: SnapshotInfo): QJson {
  return {
    id: s.id,
    name: s.name,
    "vm-state-size": s.vmStateSize,
    "date-sec": s.dateSec,
    "date-nsec": s.dateNsec,
    "vm-clock-sec": Math.floor(s.vmClockNsec / 1e9),
    "vm-clock-nsec": s.vmClockNsec % 1e9,
    icount: s.icount,
  };
}

/** The `qemu-img info --output=json` object of one image. */
export function infoJson(info: ImageInfo): QJson {
  return {
    filename: info.filename,
    format: info.format,
    "dirty-flag": info.dirty,
    "actual-size": info.actualSize,
    "virtual-size": info.virtualSize,
    "cluster-size": info.clusterSize,
    encrypted: info.encrypted ? true : undefined,
    "backing-filename": info.backingFilename,
    "full-backing-filename": info.fullBackingFilename,
    "backing-filename-format": info.backingFormat,
    snapshots: info.snapshots.length > 0 ? info.snapshots.map(snapshotJson) : undefined,
    "format-specific": info.formatSpecific
      ? { type: info.formatSpecific.type, data: toQJson(info.formatSpecific.data) ?? {} }
      : undefined,
  };
}

const two = (n: number): string => String(n).padStart(2, "0");

/** One row (or, without `s`, the header) of qemu's snapshot table. */
export function snapshotRow(s?: SnapshotInfo): string {
  if (!s) {
    return "ID".padEnd(10) + "TAG".padEnd(17) + "VM SIZE".padStart(8) + "DATE".padStart(20) +
      "VM CLOCK".padStart(13) + "ICOUNT".padStart(11);
  }
  const d = new Date(s.dateSec * 1000);
  const date = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  const secs = Math.floor(s.vmClockNsec / 1e9);
  const ms = Math.floor(s.vmClockNsec / 1e6) % 1000;
  const clock = `${two(Math.floor(secs / 3600))}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}.${String(ms).padStart(3, "0")}`;
  return s.id.padEnd(9) + " " + s.name.padEnd(16) + " " + sizeToStr(s.vmStateSize).padStart(8) +
    date.padStart(20) + clock.padStart(13) + (s.icount === undefined ? "" : String(s.icount)).padStart(11);
}

/** qemu's indented dump of format-specific data: `key: value`, lists as `[i]:`. */
function dumpValue(v: QJson, level: number, lines: string[], label: string): void {
  const head = " ".repeat(level * 4) + label;
  if (Array.isArray(v)) {
    lines.push(`${head}:`);
    v.forEach((x, i) => dumpValue(x, level + 1, lines, `[${i}]`));
  } else if (v !== null && typeof v === "object") {
    lines.push(`${head}:`);
    for (const k of qdictOrder(Object.keys(v).filter((k) => v[k] !== undefined))) {
      dumpValue(v[k]!, level + 1, lines, k.replace(/-/g, " "));
    }
  } else {
    lines.push(`${head}: ${v === null ? "null" : String(v)}`);
  }
}

/** The human text of `qemu-img info` for one image (ends with a newline). */
export function infoHuman(info: ImageInfo): string {
  const lines = [
    `image: ${info.filename}`,
    `file format: ${info.format}`,
    `virtual size: ${sizeToStr(info.virtualSize)} (${info.virtualSize} bytes)`,
    `disk size: ${info.actualSize === undefined ? "unavailable" : sizeToStr(info.actualSize)}`,
  ];
  if (info.encrypted) lines.push("encrypted: yes");
  if (info.clusterSize !== undefined) lines.push(`cluster_size: ${info.clusterSize}`);
  if (info.dirty) lines.push("cleanly shut down: no");
  if (info.backingFilename !== undefined) {
    let l = `backing file: ${info.backingFilename}`;
    if (info.fullBackingFilename === undefined) l += " (cannot determine actual path)";
    else if (info.fullBackingFilename !== info.backingFilename) l += ` (actual path: ${info.fullBackingFilename})`;
    lines.push(l);
  }
  if (info.backingFormat !== undefined) lines.push(`backing file format: ${info.backingFormat}`);
  if (info.snapshots.length > 0) {
    lines.push("Snapshot list:", snapshotRow());
    for (const s of info.snapshots) lines.push(snapshotRow(s));
  }
  if (info.formatSpecific) {
    lines.push("Format specific information:");
    const data = toQJson(info.formatSpecific.data);
    if (data !== null && typeof data === "object" && !Array.isArray(data)) {
      for (const k of qdictOrder(Object.keys(data).filter((k) => data[k] !== undefined))) {
        dumpValue(data[k]!, 1, lines, k.replace(/-/g, " "));
      }
    }
  }
  return lines.join("\n") + "\n";
}
