/**
 * The FVD format driver: probe (magic and version), open (header checks, data file, bitmap,
 * table, journal replay, clean-shutdown flag), create.
 * @module
 */
import { FVD_AMEND_OPTIONS } from "./amend.js";
import type { FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { FvdBitmap } from "./bitmap.js";
import { FVD_CREATE_OPTIONS, createFvdImage } from "./create.js";
import { decodeFvdHeader, fvdGeometry, fvdNames } from "./header.js";
import { FvdInstance } from "./instance.js";
import { FVD_EMPTY_TABLE, FVD_HEADER_SIZE, FVD_MAGIC, FVD_VERSION } from "./layout.js";
import { replayFvdJournal } from "./replay.js";
import { FvdTable } from "./table.js";
import { measureFvd } from "./measure.js";

/** Open options: `copy-on-read` (or `copy_on_read`) = on|off. */
function copyOnReadOption(options: Readonly<Record<string, string>>): boolean {
  const v = options["copy-on-read"] ?? options["copy_on_read"];
  return v !== undefined && /^(on|yes|true|1)$/i.test(v);
}

async function readTable(file: IoBackend, offset: number, entries: number): Promise<FvdTable> {
  const raw = new Uint32Array(entries);
  const piece = 1 << 18;
  for (let i = 0; i < entries; i += piece) {
    const n = Math.min(piece, entries - i);
    const bytes = await readExact(file, offset + 4 * i, 4 * n, "lookup table", "fvd");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let k = 0; k < n; k++) raw[i + k] = view.getUint32(4 * k, true);
  }
  const table = new FvdTable(raw);
  // A home table never carries the dirty bit (READ_TABLE masks it anyway).
  for (let i = 0; i < entries; i++) if (raw[i] !== FVD_EMPTY_TABLE) table.clearDirty(i);
  return table;
}

async function openFvd(ctx: OpenContext): Promise<FormatInstance> {
  const file = ctx.file;
  const fileSize = await file.size();
  const head = await readExact(file, 0, Math.min(fileSize, FVD_HEADER_SIZE), "header", "fvd");
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const magic = head.length >= 4 ? view.getUint32(0, true) : 0;
  if (magic !== FVD_MAGIC) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open fvd image: magic 0x${magic.toString(16)} is not FVD's 0x${FVD_MAGIC.toString(16)}`, {
      format: "fvd",
      structure: "header",
      fileOffset: 0,
    });
  }
  const version = head.length >= 8 ? view.getUint32(4, true) : 0;
  if (version !== FVD_VERSION) {
    throw new UnsupportedFeatureError(`Cannot open fvd image: unsupported FVD version ${version} (only version 1 exists)`, {
      format: "fvd",
      structure: "header",
      fileOffset: 4,
    });
  }
  if (head.length < FVD_HEADER_SIZE) {
    await readExact(file, 0, FVD_HEADER_SIZE, "header", "fvd"); // throws: the header is cut short
  }
  const header = decodeFvdHeader(head);
  const names = fvdNames(header);
  const geometry = fvdGeometry(header, fileSize, names.dataFile !== "");
  if (names.addStorageCmd) {
    ctx.warn(`fvd image '${file.name}' names an add_storage_cmd ('${names.addStorageCmd.slice(0, 80)}'); vdisk never runs it`);
  }
  let dataFile: IoBackend = file;
  if (names.dataFile) {
    if (names.dataFileFmt && names.dataFileFmt !== "raw") {
      throw new UnsupportedFeatureError(`Cannot open fvd image: its data file format '${names.dataFileFmt}' is not supported (only raw)`, {
        format: "fvd",
        structure: "header field data_file_fmt",
      });
    }
    dataFile = await ctx.openFile({ name: names.dataFile, relativeTo: file, writable: !ctx.readOnly, purpose: "data-file" });
  }
  try {
    let bitmap: FvdBitmap | undefined;
    if (geometry.usesBitmap) {
      const bits = geometry.blocks > 0 ? await readExact(file, geometry.bitmapOffset, geometry.bitmapSize, "bitmap", "fvd") : new Uint8Array(0);
      bitmap = new FvdBitmap(bits, geometry.blockSize, geometry.baseSize);
    }
    const table = geometry.compact ? await readTable(file, geometry.tableOffset, geometry.entries) : undefined;
    const clean = header.clean_shutdown !== 0;
    let dirtyImage = false;
    let replayed: { bitmapRecords: number; tableRecords: number } | undefined;
    if (!clean && geometry.journalSize > 0) {
      // Replay: written back on a read-write open, in memory only on a read-only one [decision].
      replayed = await replayFvdJournal(file, geometry.journalOffset, geometry.journalSize, bitmap, table, ctx.warn);
      if (!ctx.readOnly) {
        bitmap?.markAllDirty();
        table?.markAllDirty();
      }
    } else if (!clean && (bitmap || table)) {
      ctx.warn(`fvd image '${file.name}' was not shut down cleanly and has no journal: its metadata may be stale (the flag stays set until amend clean_shutdown=on)`);
      dirtyImage = true;
    }
    let dataLength = await dataFile.size();
    if (table) {
      const used = (table.maxIndex() + 1) * geometry.chunkSize;
      if (dataLength < geometry.dataBase + used) {
        ctx.warn(`fvd image '${file.name}': the data storage of ${dataLength} bytes ends before the last mapped chunk (${geometry.dataBase + used})`);
      } else if (!clean && !ctx.readOnly && dataLength > geometry.dataBase + used) {
        // After a crash, chunks past the last mapped one may hold data of lost writes: trimmed so
        // that reusing them reads zeros [decision].
        await dataFile.truncate(geometry.dataBase + used);
        dataLength = geometry.dataBase + used;
      }
    }
    const inst = new FvdInstance({
      file,
      dataFile,
      header,
      geometry,
      bitmap,
      table,
      readOnly: ctx.readOnly,
      kernel: ctx.kernel,
      copyOnRead: copyOnReadOption(ctx.options) && !!bitmap && !ctx.readOnly,
      cleanAtOpen: clean,
      dirtyImage,
      dataLength,
      replayed,
    });
    if (!ctx.readOnly) {
      if (replayed) {
        await dataFile.flush();
        await inst.syncAll();
      }
      header.clean_shutdown = 0;
      await inst.writeHeader();
      await file.flush();
    }
    return inst;
  } catch (e) {
    if (dataFile !== file) await dataFile.close().catch(() => {});
    throw e;
  }
}

function probeFvd(input: ProbeInput): number {
  if (input.head.length < 8) return 0;
  const v = new DataView(input.head.buffer, input.head.byteOffset, input.head.byteLength);
  return v.getUint32(0, true) === FVD_MAGIC && v.getUint32(4, true) === FVD_VERSION ? 100 : 0;
}

/** The FVD format (IBM's Fast Virtual Disk, v1 as its driver code wrote it). */
export const fvdDriver: FormatDriver = {
  name: "fvd",
  createOptions: FVD_CREATE_OPTIONS,
  measure: measureFvd,
  amendOptions: FVD_AMEND_OPTIONS,
  supportsBacking: true,
  probe: probeFvd,
  open: openFvd,
  create: createFvdImage,
};
