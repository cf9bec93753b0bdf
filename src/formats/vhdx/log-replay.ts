/**
 * Reading the VHDX log: finding the active sequence of entries and turning it into the writes
 * it stands for, in replay order. Applying them (read-write open, `check -r all`) or keeping
 * them in memory (read-only open) is the caller's choice.
 *
 * An entry is valid when its header names the log GUID of the current header, its checksum
 * matches over `entryLength` bytes, and every descriptor and data sector carries the entry's
 * sequence number. The active sequence ends at the valid entry with the highest sequence
 * number (the head) and starts at the entry the head's `tail` names, each entry following the
 * previous one in the circular log with the next sequence number.
 * @module
 */
import { FieldOverflowError } from "../../codec/struct.js";
import { CorruptImageError, LimitExceededError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import type { Kernel } from "../../kernel/kernel.js";
import { vhdxChecksum, vhdxStoredChecksum } from "./checksum.js";
import { VHDX_ZERO_GUID, vhdxGuidText } from "./guid.js";
import type { VhdxHeaderInfo } from "./headers.js";
import {
  VHDX_HEADER_SECTION_SIZE,
  VHDX_LOG_DATA_DESC_SIGNATURE,
  VHDX_LOG_DATA_SECTOR_SIGNATURE,
  VHDX_LOG_DESCRIPTOR_SIZE,
  VHDX_LOG_SECTOR_SIZE,
  VHDX_LOG_SIGNATURE,
  VHDX_LOG_ZERO_DESC_SIGNATURE,
  VHDX_MIB,
  VhdxLogDataDescriptor,
  VhdxLogDataSector,
  VhdxLogEntryHeader,
  VhdxLogZeroDescriptor,
  vhdxSequence,
} from "./layout.js";

/** Largest single log entry vdisk reads (real entries are a few sectors). */
export const VHDX_MAX_LOG_ENTRY = 32 * VHDX_MIB;
/** Most zero bytes a replay may write (zero descriptors cover freed metadata, never more). */
export const VHDX_MAX_LOG_ZERO_BYTES = 256 * VHDX_MIB;

/**
 * Most a replay may grow the file by (`LastFileOffset` past the end): an entry records the size
 * the file had when it was written, a few blocks past what was flushed.
 */
export const VHDX_MAX_LOG_GROWTH = 4 * 2 ** 30;

/** One write the log stands for: a 4 KiB sector, or a run of zeros. */
export interface VhdxLogPatch {
  readonly fileOffset: number;
  /** 4096 bytes to write, or undefined for zeros. */
  readonly data?: Uint8Array;
  /** Byte count for zeros (a multiple of 4096); 4096 for data. */
  readonly length: number;
}

/** The active sequence of a dirty log. */
export interface VhdxLogReplay {
  /** Entries replayed. */
  readonly entries: number;
  readonly headSequence: bigint;
  /** Writes in replay order (later ones win). */
  readonly patches: readonly VhdxLogPatch[];
  /** The file must be at least this long (largest `FlushedFileOffset`). */
  readonly flushedFileOffset: number;
  /** The file is extended to this length after the replay (largest `LastFileOffset`). */
  readonly lastFileOffset: number;
}

interface ValidEntry {
  readonly position: number;
  readonly length: number;
  readonly tail: number;
  readonly sequence: bigint;
  readonly flushedFileOffset: number;
  readonly lastFileOffset: number;
  readonly patches: VhdxLogPatch[];
}

function corrupt(message: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open vhdx image: ${message}`, { format: "vhdx", structure: "log", fileOffset });
}

/** Reads `length` bytes of the circular log from `position` on, wrapping at its end. */
async function readWrapped(io: IoBackend, logOffset: number, logLength: number, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  let pos = position;
  while (done < length) {
    const n = Math.min(length - done, logLength - pos);
    out.set(await readExact(io, logOffset + pos, n, "log", "vhdx"), done);
    done += n;
    pos = (pos + n) % logLength;
  }
  return out;
}

const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));

/** Decodes and checks the entry at `position`; undefined when it is not a valid entry. */
async function readEntry(
  io: IoBackend,
  kernel: Kernel,
  header: VhdxHeaderInfo,
  position: number,
  first: Uint8Array,
): Promise<ValidEntry | undefined> {
  const { logOffset, logLength } = header;
  let h;
  try {
    h = VhdxLogEntryHeader.decode(first);
  } catch {
    return undefined; // a file offset past 2^53: not an entry vdisk could have to replay
  }
  if (h.signature !== VHDX_LOG_SIGNATURE || vhdxGuidText(h.logGuid) !== header.logGuid) return undefined;
  const seq = vhdxSequence(h.sequenceNumber);
  const sectors = h.entryLength / VHDX_LOG_SECTOR_SIZE;
  if (seq === 0n || !Number.isInteger(sectors) || sectors < 1 || h.entryLength > logLength) return undefined;
  if (h.tail % VHDX_LOG_SECTOR_SIZE !== 0 || h.tail >= logLength) return undefined;
  const descSectors = Math.ceil((VhdxLogEntryHeader.size + h.descriptorCount * VHDX_LOG_DESCRIPTOR_SIZE) / VHDX_LOG_SECTOR_SIZE);
  if (descSectors > sectors) return undefined;
  if (h.entryLength > VHDX_MAX_LOG_ENTRY) {
    throw new LimitExceededError(
      `Cannot open vhdx image: log entry ${seq} of ${formatBytes(h.entryLength)} exceeds the limit of ${formatBytes(VHDX_MAX_LOG_ENTRY)}`,
      { format: "vhdx", structure: "log", fileOffset: logOffset + position },
    );
  }
  const entry = sectors === 1 ? first.slice() : await readWrapped(io, logOffset, logLength, position, h.entryLength);
  const crcAt = VhdxLogEntryHeader.offsetOf("checksum");
  if (vhdxChecksum(kernel, entry, crcAt) !== vhdxStoredChecksum(entry, crcAt)) return undefined;
  const patches: VhdxLogPatch[] = [];
  let dataSector = descSectors;
  for (let k = 0; k < h.descriptorCount; k++) {
    const at = VhdxLogEntryHeader.size + k * VHDX_LOG_DESCRIPTOR_SIZE;
    const sig = ascii(entry, at, 4);
    try {
      if (sig === VHDX_LOG_DATA_DESC_SIGNATURE) {
        const d = VhdxLogDataDescriptor.decode(entry, at);
        if (vhdxSequence(d.sequenceNumber) !== seq || d.fileOffset % VHDX_LOG_SECTOR_SIZE !== 0) return undefined;
        if (dataSector >= sectors) return undefined;
        const ds = VhdxLogDataSector.decode(entry, dataSector * VHDX_LOG_SECTOR_SIZE);
        if (ds.signature !== VHDX_LOG_DATA_SECTOR_SIGNATURE) return undefined;
        if ((BigInt(ds.sequenceHigh) << 32n) + BigInt(ds.sequenceLow) !== seq) return undefined;
        const data = new Uint8Array(VHDX_LOG_SECTOR_SIZE);
        data.set(d.leadingBytes, 0);
        data.set(ds.data, 8);
        data.set(d.trailingBytes, VHDX_LOG_SECTOR_SIZE - 4);
        patches.push({ fileOffset: d.fileOffset, data, length: VHDX_LOG_SECTOR_SIZE });
        dataSector++;
      } else if (sig === VHDX_LOG_ZERO_DESC_SIGNATURE) {
        const z = VhdxLogZeroDescriptor.decode(entry, at);
        if (vhdxSequence(z.sequenceNumber) !== seq) return undefined;
        if (z.fileOffset % VHDX_LOG_SECTOR_SIZE !== 0 || z.zeroLength % VHDX_LOG_SECTOR_SIZE !== 0) return undefined;
        patches.push({ fileOffset: z.fileOffset, length: z.zeroLength });
      } else {
        return undefined;
      }
    } catch (e) {
      if (e instanceof RangeError || e instanceof FieldOverflowError) return undefined; // an offset past 2^53
      throw e;
    }
  }
  for (const p of patches) {
    if (p.fileOffset < VHDX_HEADER_SECTION_SIZE) {
      throw corrupt(`log entry ${seq} writes to offset ${p.fileOffset}, inside the header section`, logOffset + position);
    }
  }
  return {
    position,
    length: h.entryLength,
    tail: h.tail,
    sequence: seq,
    flushedFileOffset: h.flushedFileOffset,
    lastFileOffset: h.lastFileOffset,
    patches,
  };
}

/**
 * Finds the active sequence of the log the current header names. Returns undefined when the
 * header names no log (zero GUID or length) or the log holds no valid entry. Throws
 * CorruptImageError when the log region is misplaced or the sequence cannot be replayed on a
 * file of `fileSize` bytes (it was truncated).
 */
export async function readVhdxLog(io: IoBackend, kernel: Kernel, header: VhdxHeaderInfo, fileSize: number): Promise<VhdxLogReplay | undefined> {
  const { logOffset, logLength } = header;
  if (header.logGuid === VHDX_ZERO_GUID || logLength === 0) return undefined;
  if (logOffset + logLength > fileSize) {
    throw corrupt(`log at ${logOffset} (${formatBytes(logLength)}) extends past the end of the ${formatBytes(fileSize)} file`, logOffset);
  }
  // Every 4 KiB sector that starts with an entry signature and names our log is a candidate.
  const found: ValidEntry[] = [];
  const chunk = Math.min(logLength, VHDX_MIB);
  // Real entries do not overlap, so reading each candidate costs at most the log once; a log
  // crafted with overlapping candidates must not make the scan read without end.
  let budget = 2 * logLength + 16 * VHDX_MIB;
  for (let base = 0; base < logLength; base += chunk) {
    const buf = await readExact(io, logOffset + base, chunk, "log", "vhdx");
    for (let s = 0; s < chunk; s += VHDX_LOG_SECTOR_SIZE) {
      if (buf[s] !== 0x6c || ascii(buf, s, 4) !== VHDX_LOG_SIGNATURE) continue;
      const claimed = new DataView(buf.buffer, buf.byteOffset + s + 8, 4).getUint32(0, true);
      budget -= Math.min(claimed, logLength);
      if (budget < 0) {
        throw new LimitExceededError(
          `Cannot open vhdx image: the log's entry headers claim more than ${formatBytes(2 * logLength + 16 * VHDX_MIB)} in total; it is corrupt`,
          { format: "vhdx", structure: "log", fileOffset: logOffset + base + s },
        );
      }
      const e = await readEntry(io, kernel, header, base + s, buf.subarray(s, s + VHDX_LOG_SECTOR_SIZE));
      if (e) found.push(e);
    }
  }
  if (found.length === 0) return undefined;
  const byPosition = new Map(found.map((e) => [e.position, e]));
  const chainFrom = (start: number, head: ValidEntry): ValidEntry[] | undefined => {
    const chain: ValidEntry[] = [];
    let pos = start;
    let expect: bigint | undefined;
    for (let guard = 0; guard <= found.length; guard++) {
      const e = byPosition.get(pos);
      if (!e || (expect !== undefined && e.sequence !== expect)) return undefined;
      chain.push(e);
      if (e === head) return chain;
      expect = e.sequence + 1n;
      pos = (pos + e.length) % logLength;
    }
    return undefined;
  };
  const heads = [...found].sort((a, b) => (a.sequence < b.sequence ? 1 : a.sequence > b.sequence ? -1 : 0));
  let active: ValidEntry[] | undefined;
  // Newer heads first; a few are enough (only a damaged log has a head whose tail is gone).
  for (const head of heads.slice(0, 16)) {
    active = chainFrom(head.tail, head);
    if (active) break;
  }
  if (!active) {
    // No head names a complete tail: replay the run of consecutive entries that ends at the
    // newest one (what qemu does); older entries replayed first are overwritten by newer ones.
    const run = [heads[0]];
    for (const e of heads.slice(1)) {
      const oldest = run[run.length - 1];
      if (e.sequence + 1n === oldest.sequence && (e.position + e.length) % logLength === oldest.position) run.push(e);
    }
    active = run.reverse();
  }
  const flushed = Math.max(...active.map((e) => e.flushedFileOffset));
  const last = Math.max(...active.map((e) => e.lastFileOffset));
  if (flushed > fileSize) {
    throw corrupt(
      `the log expects a file of at least ${flushed} bytes but it has ${fileSize}; the image has probably been truncated`,
      logOffset,
    );
  }
  if (last > fileSize + VHDX_MAX_LOG_GROWTH) {
    throw new LimitExceededError(
      `Cannot open vhdx image: the log would grow the ${formatBytes(fileSize)} file to ${formatBytes(last)}, more than ${formatBytes(VHDX_MAX_LOG_GROWTH)} past its end`,
      { format: "vhdx", structure: "log", fileOffset: logOffset },
    );
  }
  const patches = active.flatMap((e) => e.patches);
  const limit = Math.max(fileSize, last);
  for (const p of patches) {
    if (p.fileOffset + p.length > limit) {
      throw corrupt(`the log writes ${p.length} bytes at ${p.fileOffset}, past the end of the file (${limit} bytes)`, logOffset);
    }
  }
  const zeroBytes = patches.reduce((n, p) => n + (p.data ? 0 : p.length), 0);
  if (zeroBytes > VHDX_MAX_LOG_ZERO_BYTES) {
    throw new LimitExceededError(
      `Cannot open vhdx image: the log zeroes ${formatBytes(zeroBytes)}, more than the limit of ${formatBytes(VHDX_MAX_LOG_ZERO_BYTES)}`,
      { format: "vhdx", structure: "log", fileOffset: logOffset },
    );
  }
  return {
    entries: active.length,
    headSequence: active[active.length - 1].sequence,
    patches,
    flushedFileOffset: flushed,
    lastFileOffset: Math.max(last, flushed),
  };
}

/** Writes the replay's patches into `io` in order, flushes, and extends the file to `lastFileOffset`. */
export async function applyVhdxLog(io: IoBackend, replay: VhdxLogReplay): Promise<void> {
  const zeros = new Uint8Array(VHDX_MIB);
  for (const p of replay.patches) {
    if (p.data) {
      await io.write(p.fileOffset, p.data);
      continue;
    }
    for (let done = 0; done < p.length; done += zeros.length) {
      await io.write(p.fileOffset + done, zeros.subarray(0, Math.min(zeros.length, p.length - done)));
    }
  }
  if ((await io.size()) < replay.lastFileOffset) await io.truncate(replay.lastFileOffset);
  await io.flush();
}
