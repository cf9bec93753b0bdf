/**
 * Writing VHDX log entries. Each entry stands alone: its `tail` names itself, so the active
 * sequence after a crash is at most the newest fully written entry, and replaying it again is
 * harmless because vdisk applies an entry before it writes the next one.
 * @module
 */
import type { IoBackend } from "../../io/backend.js";
import type { Kernel } from "../../kernel/kernel.js";
import type { VhdxMetadataSector } from "./bat.js";
import { vhdxSetChecksum } from "./checksum.js";
import { vhdxGuidBytes } from "./guid.js";
import {
  VHDX_LOG_DATA_DESC_SIGNATURE,
  VHDX_LOG_DATA_SECTOR_SIGNATURE,
  VHDX_LOG_DESCRIPTOR_SIZE,
  VHDX_LOG_SECTOR_SIZE,
  VHDX_LOG_SIGNATURE,
  VhdxLogDataDescriptor,
  VhdxLogDataSector,
  VhdxLogEntryHeader,
  vhdxSequenceBytes,
} from "./layout.js";

/** Log sectors an entry with `dataSectors` data descriptors takes. */
export function vhdxLogEntrySectors(dataSectors: number): number {
  const descSectors = Math.ceil((VhdxLogEntryHeader.size + dataSectors * VHDX_LOG_DESCRIPTOR_SIZE) / VHDX_LOG_SECTOR_SIZE);
  return descSectors + dataSectors;
}

/** Writes entries into the circular log of one log GUID. */
export class VhdxLogWriter {
  private head = 0;
  private sequence = 1n;
  private guid = "";

  constructor(
    private readonly logOffset: number,
    private readonly logLength: number,
    private readonly kernel: Kernel,
  ) {}

  /**
   * Most data sectors one entry may carry: an entry never takes more than half the log, so
   * writing the next one can never overwrite the previous one before it is complete.
   */
  get maxSectorsPerEntry(): number {
    const half = Math.floor(this.logLength / VHDX_LOG_SECTOR_SIZE / 2);
    let n = half;
    while (n > 0 && vhdxLogEntrySectors(n) > half) n--;
    return n;
  }

  /** Starts a new log (a new GUID written to the headers): empty, sequence 1. */
  reset(guid: string): void {
    this.guid = guid;
    this.head = 0;
    this.sequence = 1n;
  }

  /** Builds the bytes of an entry for `sectors` at the current head (for tests and {@link write}). */
  build(sectors: readonly VhdxMetadataSector[], flushedFileOffset: number, lastFileOffset: number): Uint8Array {
    const n = sectors.length;
    const total = vhdxLogEntrySectors(n);
    const descSectors = total - n;
    const entry = new Uint8Array(total * VHDX_LOG_SECTOR_SIZE);
    const seq = vhdxSequenceBytes(this.sequence);
    VhdxLogEntryHeader.encode(
      {
        signature: VHDX_LOG_SIGNATURE,
        checksum: 0,
        entryLength: entry.length,
        tail: this.head,
        sequenceNumber: seq,
        descriptorCount: n,
        reserved: 0,
        logGuid: vhdxGuidBytes(this.guid),
        flushedFileOffset,
        lastFileOffset,
      },
      entry,
    );
    const hi = Number(this.sequence >> 32n);
    const lo = Number(this.sequence & 0xffffffffn);
    sectors.forEach((s, k) => {
      VhdxLogDataDescriptor.encode(
        {
          signature: VHDX_LOG_DATA_DESC_SIGNATURE,
          trailingBytes: s.data.subarray(VHDX_LOG_SECTOR_SIZE - 4),
          leadingBytes: s.data.subarray(0, 8),
          fileOffset: s.fileOffset,
          sequenceNumber: seq,
        },
        entry,
        VhdxLogEntryHeader.size + k * VHDX_LOG_DESCRIPTOR_SIZE,
      );
      VhdxLogDataSector.encode(
        {
          signature: VHDX_LOG_DATA_SECTOR_SIGNATURE,
          sequenceHigh: hi,
          data: s.data.subarray(8, VHDX_LOG_SECTOR_SIZE - 4),
          sequenceLow: lo,
        },
        entry,
        (descSectors + k) * VHDX_LOG_SECTOR_SIZE,
      );
    });
    vhdxSetChecksum(this.kernel, entry, VhdxLogEntryHeader.offsetOf("checksum"));
    return entry;
  }

  /**
   * Writes one entry for `sectors` (at most {@link maxSectorsPerEntry}) at the head, wrapping
   * around the end of the log, and advances the head. Does not flush.
   */
  async write(io: IoBackend, sectors: readonly VhdxMetadataSector[], flushedFileOffset: number, lastFileOffset: number): Promise<void> {
    if (sectors.length > this.maxSectorsPerEntry) {
      throw new RangeError(`A log entry of ${sectors.length} sectors does not fit in half of the ${this.logLength}-byte log`);
    }
    const entry = this.build(sectors, flushedFileOffset, lastFileOffset);
    let done = 0;
    let pos = this.head;
    while (done < entry.length) {
      const n = Math.min(entry.length - done, this.logLength - pos);
      await io.write(this.logOffset + pos, entry.subarray(done, done + n));
      done += n;
      pos = (pos + n) % this.logLength;
    }
    this.head = pos;
    this.sequence++;
  }
}
