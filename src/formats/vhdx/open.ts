/**
 * Opening a VHDX file: file identifier, headers, log (replayed into the file on a read-write
 * open, in memory on a read-only one), region table, metadata, BAT, parent.
 * @module
 */
import type { OpenContext } from "../../core/format.js";
import { decodeUtf16 } from "../../codec/utf16.js";
import { CorruptImageError, ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import { VhdxBat } from "./bat.js";
import { VhdxHeaders } from "./headers.js";
import { VhdxInstance, type VhdxLogState } from "./instance.js";
import { VhdxJournal } from "./journal.js";
import {
  VHDX_FILE_SIGNATURE,
  VHDX_MAX_LOG_LENGTH,
  VHDX_MIB,
  VhdxFileIdentifier,
  vhdxGeometry,
} from "./layout.js";
import { VhdxLogOverlayBackend } from "./log-overlay.js";
import { readVhdxLog } from "./log-replay.js";
import { VhdxLogWriter } from "./log-writer.js";
import { readVhdxMetadata } from "./metadata.js";
import { resolveVhdxParent } from "./parent.js";
import { readVhdxRegionTable, type VhdxReservedRange } from "./region-table.js";

function corrupt(message: string, structure: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open vhdx image: ${message}`, { format: "vhdx", structure, fileOffset });
}

/** Opens the VHDX image in `ctx.file`. Throws an {@link ImageError} for anything wrong with it. */
export async function openVhdx(ctx: OpenContext): Promise<VhdxInstance> {
  const { kernel } = ctx;
  const raw = ctx.file;
  const writable = !ctx.readOnly;
  let fileSize = await raw.size();

  const id = VhdxFileIdentifier.decode(await readZeroPadded(raw, 0, VhdxFileIdentifier.size));
  if (id.signature !== VHDX_FILE_SIGNATURE) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open vhdx image: file signature is '${id.signature.replace(/[^\x20-\x7e]/g, "?")}', not 'vhdxfile'`, {
      format: "vhdx",
      structure: "file identifier",
      fileOffset: 0,
    });
  }
  const creator = decodeUtf16(id.creator, true);

  const headers = await VhdxHeaders.read(raw, kernel);
  const h = headers.current;
  if (h.logVersion !== 0) {
    throw new UnsupportedFeatureError(`Cannot open vhdx image: log version ${h.logVersion} is not supported (only 0 is defined)`, {
      format: "vhdx",
      structure: "header",
    });
  }
  if (h.logLength % VHDX_MIB !== 0 || h.logLength > VHDX_MAX_LOG_LENGTH) {
    throw corrupt(`log length ${h.logLength} is not a multiple of 1 MiB below 4 GiB`, "header");
  }
  if (h.logLength > 0 && (h.logOffset % VHDX_MIB !== 0 || h.logOffset < VHDX_MIB)) {
    throw corrupt(`log offset ${h.logOffset} is not a multiple of 1 MiB past the header section`, "header");
  }

  const logRange: VhdxReservedRange = { name: "log", start: h.logOffset, length: h.logLength };
  const journal = writable ? new VhdxJournal(raw, kernel, headers, h.logLength > 0 ? new VhdxLogWriter(h.logOffset, h.logLength, kernel) : undefined) : undefined;

  let file: IoBackend = raw;
  let logState: VhdxLogState = "clean";
  const replay = await readVhdxLog(raw, kernel, h, fileSize);
  if (replay) {
    if (journal) {
      await journal.replay(replay);
      logState = "replayed";
      fileSize = await raw.size();
    } else {
      file = new VhdxLogOverlayBackend(raw, replay);
      fileSize = await file.size();
      logState = "replayed-in-memory";
      ctx.warn(
        `VHDX image ${raw.name} has a log (${replay.entries} ${replay.entries === 1 ? "entry" : "entries"}) that was never replayed; it is read as replayed (in memory). Open it read-write or run 'check -r all' to write the replay.`,
      );
    }
  }

  const regions = await readVhdxRegionTable(file, kernel, [logRange]);
  const metadata = await readVhdxMetadata(file, regions.metadata);
  const geometry = vhdxGeometry(metadata.virtualSize, metadata.blockSize, metadata.logicalSectorSize, metadata.hasParent);
  const bat = await VhdxBat.read(file, regions.bat, geometry, fileSize);
  const reserved: VhdxReservedRange[] = [
    logRange,
    ...regions.regions.map((r) => ({
      name: r === regions.bat ? "BAT region" : r === regions.metadata ? "metadata region" : `region {${r.guid}}`,
      start: r.fileOffset,
      length: r.length,
    })),
  ];
  const scan = bat.scan(fileSize, reserved);
  if (writable) {
    const bad = scan.problems.find((p) => p.overlaps);
    if (bad) {
      throw corrupt(`${bad.message.replace(/^VHDX /, "")}; refusing to open it read-write (writes would damage the image)`, "BAT", regions.bat.fileOffset + bad.index * 8);
    }
  }
  for (const p of scan.problems.slice(0, 3)) ctx.warn(p.message);
  if (scan.problems.length > 3) ctx.warn(`VHDX BAT has ${scan.problems.length - 3} more problems; run check for all`);

  const backing = metadata.parentLocator ? await resolveVhdxParent(ctx, metadata.parentLocator) : undefined;
  return new VhdxInstance({
    file,
    rawFile: raw,
    writable,
    kernel,
    headers,
    regions,
    metadata,
    geometry,
    bat,
    scan,
    reserved,
    fileSize,
    creator,
    logState,
    logEntries: replay?.entries ?? 0,
    journal,
    backing,
  });
}
