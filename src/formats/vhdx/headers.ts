/**
 * The two VHDX headers: choosing the current one, and updating them the way the
 * specification requires (write the non-current copy with a higher sequence number, flush;
 * twice, so both copies end up current and valid).
 * @module
 */
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import type { Kernel } from "../../kernel/kernel.js";
import { vhdxChecksum, vhdxSetChecksum, vhdxStoredChecksum } from "./checksum.js";
import { vhdxGuidBytes, vhdxGuidText } from "./guid.js";
import {
  VHDX_HEADER1_OFFSET,
  VHDX_HEADER2_OFFSET,
  VHDX_HEADER_SIGNATURE,
  VHDX_HEADER_SIZE,
  VhdxHeader,
  vhdxSequence,
  vhdxSequenceBytes,
} from "./layout.js";

/** The decoded fields of a header that vdisk uses. */
export interface VhdxHeaderInfo {
  readonly sequenceNumber: bigint;
  readonly fileWriteGuid: string;
  readonly dataWriteGuid: string;
  readonly logGuid: string;
  readonly logVersion: number;
  readonly version: number;
  /** Bytes; a multiple of 1 MiB (0: no log). */
  readonly logLength: number;
  readonly logOffset: number;
}

/** What a header update may change; the sequence number is always advanced. */
export interface VhdxHeaderChange {
  fileWriteGuid?: string;
  dataWriteGuid?: string;
  logGuid?: string;
}

interface HeaderCopy {
  readonly offset: number;
  raw: Uint8Array;
  info?: VhdxHeaderInfo;
  /** Why this copy is not valid. */
  problem?: string;
}

const CRC_AT = VhdxHeader.offsetOf("checksum");

function decodeCopy(kernel: Kernel, offset: number, raw: Uint8Array): HeaderCopy {
  const copy: HeaderCopy = { offset, raw };
  const stored = vhdxStoredChecksum(raw, CRC_AT);
  if (raw.subarray(0, 4).every((b) => b === 0) && stored === 0) {
    copy.problem = "is empty";
    return copy;
  }
  const sig = String.fromCharCode(...raw.subarray(0, 4));
  if (sig !== VHDX_HEADER_SIGNATURE) {
    copy.problem = `has signature '${sig.replace(/[^\x20-\x7e]/g, "?")}' instead of 'head'`;
    return copy;
  }
  const crc = vhdxChecksum(kernel, raw, CRC_AT);
  if (crc !== stored) {
    copy.problem = `has a bad checksum (stored 0x${stored.toString(16)}, computed 0x${crc.toString(16)})`;
    return copy;
  }
  let h;
  try {
    h = VhdxHeader.decode(raw);
  } catch {
    copy.problem = "has a log offset past 2^53";
    return copy;
  }
  if (h.version !== 1) {
    copy.problem = `has version ${h.version} (only 1 is defined)`;
    return copy;
  }
  copy.info = {
    sequenceNumber: vhdxSequence(h.sequenceNumber),
    fileWriteGuid: vhdxGuidText(h.fileWriteGuid),
    dataWriteGuid: vhdxGuidText(h.dataWriteGuid),
    logGuid: vhdxGuidText(h.logGuid),
    logVersion: h.logVersion,
    version: h.version,
    logLength: h.logLength,
    logOffset: h.logOffset,
  };
  return copy;
}

/** Both header copies and which one is current. */
export class VhdxHeaders {
  private constructor(
    private readonly copies: [HeaderCopy, HeaderCopy],
    private currentIndex: 0 | 1,
  ) {}

  /**
   * Reads both headers and picks the current one: the only valid one, or the valid one with
   * the higher sequence number. Equal numbers are accepted only when the copies are identical
   * (Disk2VHD writes them so). Throws CorruptImageError when neither copy is usable.
   */
  static async read(io: IoBackend, kernel: Kernel): Promise<VhdxHeaders> {
    const h1 = decodeCopy(kernel, VHDX_HEADER1_OFFSET, await readZeroPadded(io, VHDX_HEADER1_OFFSET, VHDX_HEADER_SIZE));
    const h2 = decodeCopy(kernel, VHDX_HEADER2_OFFSET, await readZeroPadded(io, VHDX_HEADER2_OFFSET, VHDX_HEADER_SIZE));
    let current: 0 | 1;
    if (h1.info && h2.info) {
      const s1 = h1.info.sequenceNumber;
      const s2 = h2.info.sequenceNumber;
      if (s1 === s2) {
        const same = h1.raw.subarray(0, VhdxHeader.size).every((b, i) => b === h2.raw[i]);
        if (!same) {
          throw new CorruptImageError(
            `Cannot open vhdx image: both headers have sequence number ${s1} but differ, so neither is current`,
            { format: "vhdx", structure: "header", fileOffset: VHDX_HEADER1_OFFSET },
          );
        }
        current = 0;
      } else {
        current = s1 > s2 ? 0 : 1;
      }
    } else if (h1.info) {
      current = 0;
    } else if (h2.info) {
      current = 1;
    } else {
      throw new CorruptImageError(
        `Cannot open vhdx image: no valid header (header 1 ${h1.problem}; header 2 ${h2.problem})`,
        { format: "vhdx", structure: "header", fileOffset: VHDX_HEADER1_OFFSET },
      );
    }
    return new VhdxHeaders([h1, h2], current);
  }

  /** The current header. */
  get current(): VhdxHeaderInfo {
    return this.copies[this.currentIndex].info!;
  }

  /** 0 for the header at 64 KiB, 1 for the one at 128 KiB. */
  get currentCopy(): 0 | 1 {
    return this.currentIndex;
  }

  /** One line per copy that is invalid or stale (for `check`). */
  problems(): string[] {
    const out: string[] = [];
    this.copies.forEach((c, i) => {
      if (c.problem) out.push(`VHDX header ${i + 1} ${c.problem}`);
    });
    return out;
  }

  /** True when a copy is invalid (a header update rewrites it). */
  get hasInvalidCopy(): boolean {
    return this.copies.some((c) => !c.info);
  }

  /**
   * Writes the non-current copy with the current fields, `change` applied and the sequence
   * number advanced, flushes, and makes it current. Reserved bytes of the current copy are kept.
   */
  async update(io: IoBackend, kernel: Kernel, change: VhdxHeaderChange): Promise<void> {
    const cur = this.copies[this.currentIndex];
    const nextIndex = (1 - this.currentIndex) as 0 | 1;
    const target = this.copies[nextIndex];
    const raw = cur.raw.slice();
    const h = VhdxHeader.decode(raw);
    h.sequenceNumber = vhdxSequenceBytes(cur.info!.sequenceNumber + 1n);
    if (change.fileWriteGuid) h.fileWriteGuid = vhdxGuidBytes(change.fileWriteGuid);
    if (change.dataWriteGuid) h.dataWriteGuid = vhdxGuidBytes(change.dataWriteGuid);
    if (change.logGuid) h.logGuid = vhdxGuidBytes(change.logGuid);
    VhdxHeader.encode(h, raw);
    vhdxSetChecksum(kernel, raw, CRC_AT);
    await io.write(target.offset, raw);
    await io.flush();
    const fresh = decodeCopy(kernel, target.offset, raw);
    target.raw = fresh.raw;
    target.info = fresh.info;
    target.problem = undefined;
    this.currentIndex = nextIndex;
  }

  /** {@link update} twice, so both copies hold the change. */
  async updateBoth(io: IoBackend, kernel: Kernel, change: VhdxHeaderChange): Promise<void> {
    await this.update(io, kernel, change);
    await this.update(io, kernel, change);
  }
}
