/**
 * `info` for FVD: every header field under its own name (strings without their NUL padding),
 * the derived geometry, and where this implementation differs from the original.
 * @module
 */
import type { FormatInfo } from "../../core/format.js";
import type { FvdInstance } from "./instance.js";
import { FVD_HEADER_FIELDS, FVD_PROJECT_DECISIONS, fvdString } from "./layout.js";

/** Session state shown next to the header. */
export interface FvdInfoExtra {
  /** clean_shutdown was 0 at open. */
  dirty: boolean;
  /** The flag stays 0 at close (no journal to recover with). */
  dirtyImage: boolean;
  journalNext: number;
  pending: number;
}

/** Builds `info` for the open image `inst`. */
export function fvdInfo(inst: FvdInstance, extra: FvdInfoExtra): FormatInfo {
  const h = inst.header as unknown as Record<string, number | string>;
  const header: Record<string, unknown> = {};
  for (const f of FVD_HEADER_FIELDS) {
    const v = h[f.name];
    header[f.name] = f.kind === "ascii" ? fvdString(v as string) : v;
  }
  header.magic = `0x${(inst.header.magic >>> 0).toString(16)}`;
  const g = inst.geo;
  const derived: Record<string, unknown> = {
    "data-offset": g.dataBase,
    "data-storage": inst.dataFile.name,
    "uses-base-image": inst.usesBase,
    "allocation-unit": inst.allocationUnit,
    "journal-sectors": Math.floor(g.journalSize / 512),
    "copy-on-read-active": inst.copyOnRead,
    "clean-at-open": inst.cleanAtOpen,
    "dirty-image": extra.dirtyImage,
  };
  if (g.compact) {
    derived["table-entries"] = g.entries;
    derived["table-size"] = g.tableRegion;
    derived["used-chunks"] = inst.usedChunks;
  }
  if (g.usesBitmap) derived["bitmap-blocks"] = g.blocks;
  if (inst.replayed) derived["journal-replayed"] = { ...inst.replayed };
  const cmd = fvdString(inst.header.add_storage_cmd);
  return {
    dirty: extra.dirty,
    formatSpecific: {
      type: "fvd",
      data: {
        ...header,
        derived,
        "add-storage-cmd-policy": cmd ? "kept and shown, never executed" : "none",
        "project-decisions": [...FVD_PROJECT_DECISIONS],
      },
    },
  };
}
