/**
 * `vdisk info` output: qemu-img's JSON object and its human text for one image.
 * @module
 */
import type { SnapshotInfo } from "../core/format.js";
import { infoJson, toQJson, type ImageInfo } from "../ops/info.js";
import { sizeToStr } from "../ops/number-format.js";
import { qdictOrder, type QJson } from "./qemu-json.js";

export { infoJson, toQJson };

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
