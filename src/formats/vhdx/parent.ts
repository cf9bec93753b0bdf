/**
 * Parents of differencing images: choosing the file the parent locator names, checking its
 * linkage, and reading what `create -b` needs from a parent.
 * @module
 */
import type { BackingReference, OpenContext } from "../../core/format.js";
import { UnsupportedFeatureError, isImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import type { Kernel } from "../../kernel/kernel.js";
import { VhdxHeaders } from "./headers.js";
import { VHDX_PARENT_LOCATOR_TYPE_VHDX } from "./layout.js";
import { VhdxLogOverlayBackend } from "./log-overlay.js";
import { readVhdxLog } from "./log-replay.js";
import { readVhdxMetadata, vhdxLocatorValue, type VhdxParentLocator } from "./metadata.js";
import { readVhdxRegionTable } from "./region-table.js";

/** Parent locator keys, in the order the specification says to try the paths. */
export const VHDX_LOCATOR_PATH_KEYS = ["relative_path", "volume_path", "absolute_win32_path"] as const;

/**
 * A stored Windows path as a name the runtime's opener understands: backslashes become
 * slashes and a leading `./` is dropped, except in `\\?\` volume paths, which only Windows can open and are kept as they are.
 */
export function vhdxPathFromWindows(path: string): string {
  if (path.startsWith("\\\\?\\")) return path;
  // `.\\name` is how Windows writes a name next to the image; `name` means the same.
  return path.replace(/\\/g, "/").replace(/^(\.\/)+(?=.)/, "");
}

/** The candidate parent names of a locator, in the order to try them (duplicates dropped). */
export function vhdxParentCandidates(locator: VhdxParentLocator): string[] {
  const out: string[] = [];
  for (const key of VHDX_LOCATOR_PATH_KEYS) {
    const v = vhdxLocatorValue(locator, key);
    if (v) {
      const name = vhdxPathFromWindows(v);
      if (!out.includes(name)) out.push(name);
    }
  }
  return out;
}

/** What create and the linkage check need to know about a parent. */
export interface VhdxIdentity {
  readonly dataWriteGuid: string;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly virtualSize: number;
}

/** Reads the identity of the VHDX in `io` (a dirty log is replayed in memory). */
export async function readVhdxIdentity(io: IoBackend, kernel: Kernel): Promise<VhdxIdentity> {
  const headers = await VhdxHeaders.read(io, kernel);
  const h = headers.current;
  const size = await io.size();
  const replay = await readVhdxLog(io, kernel, h, size);
  const view = replay ? new VhdxLogOverlayBackend(io, replay) : io;
  const regions = await readVhdxRegionTable(view, kernel, [{ name: "log", start: h.logOffset, length: h.logLength }]);
  const md = await readVhdxMetadata(view, regions.metadata);
  return {
    dataWriteGuid: h.dataWriteGuid,
    logicalSectorSize: md.logicalSectorSize,
    physicalSectorSize: md.physicalSectorSize,
    virtualSize: md.virtualSize,
  };
}

/** Strips braces and case from GUID text for comparison. */
function normGuid(text: string | undefined): string | undefined {
  return text?.trim().replace(/^\{|\}$/g, "").toLowerCase();
}

/**
 * Chooses the parent file: the first locator path the opener (under the open policy) can open.
 * Warns when the parent's DataWriteGuid matches neither `parent_linkage` nor
 * `parent_linkage2` (the parent changed after the child was made). When no path opens, the
 * first is returned so the engine reports why.
 */
export async function resolveVhdxParent(ctx: OpenContext, locator: VhdxParentLocator): Promise<BackingReference> {
  if (locator.locatorType !== VHDX_PARENT_LOCATOR_TYPE_VHDX) {
    throw new UnsupportedFeatureError(`Cannot open vhdx image: parent locator type {${locator.locatorType}} is not a VHDX parent`, {
      format: "vhdx",
      structure: "parent locator",
    });
  }
  const candidates = vhdxParentCandidates(locator);
  if (candidates.length === 0) {
    throw new UnsupportedFeatureError("Cannot open vhdx image: the parent locator names no parent path", {
      format: "vhdx",
      structure: "parent locator",
    });
  }
  const linkages = [vhdxLocatorValue(locator, "parent_linkage"), vhdxLocatorValue(locator, "parent_linkage2")]
    .map(normGuid)
    .filter((x): x is string => !!x);
  for (const name of candidates) {
    let io: IoBackend;
    try {
      io = await ctx.openFile({ name, relativeTo: ctx.file, writable: false, purpose: "backing" });
    } catch (e) {
      if (isImageError(e)) continue;
      throw e;
    }
    try {
      const id = await readVhdxIdentity(io, ctx.kernel);
      if (linkages.length > 0 && !linkages.includes(id.dataWriteGuid)) {
        ctx.warn(
          `VHDX parent '${name}' has DataWriteGuid {${id.dataWriteGuid}} but ${ctx.file.name} was made against {${linkages[0]}}: the parent changed since, reads may be inconsistent`,
        );
      }
    } catch (e) {
      if (!isImageError(e)) throw e;
      ctx.warn(`VHDX parent '${name}' could not be read as VHDX: ${(e as Error).message}`);
    } finally {
      await io.close().catch(() => {});
    }
    return { name, format: "vhdx" };
  }
  return { name: candidates[0], format: "vhdx" };
}
