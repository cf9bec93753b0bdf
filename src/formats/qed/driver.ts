/**
 * The QED format driver: `qed` in qemu-img.
 *
 * The need-check feature bit brackets unflushed metadata changes: it is set (and made durable)
 * before the first allocation after a flush and cleared by `flush`. An image found with it set
 * is checked and repaired on a read-write open; a read-only open reads invalid entries as
 * unallocated, which is exactly what that repair would leave.
 * @module
 */
import type {
  BackingReference,
  CheckResult,
  CreateContext,
  FormatDriver,
  FormatInfo,
  FormatInstance,
  OpenContext,
  ProbeInput,
  RepairMode,
} from "../../core/format.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import { UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { writeQedBacking } from "./backing.js";
import { checkQedTables } from "./check.js";
import { QED_CREATE_OPTIONS, createQed } from "./create.js";
import { readQedLayout, writeQedHeader, type QedLayout } from "./header.js";
import {
  QED_AUTOCLEAR_FEATURE_MASK,
  QED_F_NEED_CHECK,
  QED_HEADER,
  QED_HEADER_SIZE,
  QED_MAGIC,
  qedFeatureBits,
  qedFeatureBytes,
  qedMaxImageSize,
  type QedHeader,
} from "./layout.js";
import { QedTables } from "./tables.js";
import { measureQed } from "./measure.js";

class QedInstance implements FormatInstance {
  readonly format = "qed";
  size: number;
  readonly allocationUnit: number;
  /** The backing file named by the header (changes with {@link setBacking}). */
  backing?: BackingReference;
  /** The header as it is on disk (features change as the need-check bit is set and cleared). */
  private header: QedHeader;
  private readonly headerBytes: number;
  /** True when this session set the need-check bit (so its flush may clear it). */
  private ownsNeedCheck = false;
  tables!: QedTables;

  constructor(
    private readonly file: IoBackend,
    layout: QedLayout,
    private readonly readOnly: boolean,
  ) {
    this.header = { ...layout.header };
    this.size = layout.header.imageSize;
    this.allocationUnit = layout.geometry.clusterSize;
    this.headerBytes = layout.geometry.headerBytes;
    if (layout.backingName !== undefined) {
      this.backing = layout.backingFormat ? { name: layout.backingName, format: layout.backingFormat } : { name: layout.backingName };
    }
  }

  get needsCheck(): boolean {
    return (qedFeatureBits(this.header.features) & QED_F_NEED_CHECK) !== 0n;
  }

  private setNeedCheck(on: boolean): void {
    const f = qedFeatureBits(this.header.features);
    this.header.features = qedFeatureBytes(on ? f | QED_F_NEED_CHECK : f & ~QED_F_NEED_CHECK);
  }

  /**
   * Sets the need-check bit durably before the first metadata change since the last flush. Not
   * a `beginWrites` mark: only a table change can leave the image needing a check, so an
   * overwrite of allocated clusters leaves the bit clear (as in QEMU).
   */
  async beforeChange(): Promise<void> {
    if (this.needsCheck) return;
    this.setNeedCheck(true);
    this.ownsNeedCheck = true;
    await writeQedHeader(this.file, this.header);
    await this.file.flush();
  }

  /** Clears the need-check bit once everything before it is durable. */
  private async markClean(): Promise<void> {
    if (!this.needsCheck) return;
    await this.file.flush();
    this.setNeedCheck(false);
    this.ownsNeedCheck = false;
    await writeQedHeader(this.file, this.header);
    await this.file.flush();
  }

  /** Clears autoclear bits vdisk does not know (a writer that ignores them must). */
  async clearUnknownAutoclear(): Promise<void> {
    const bits = qedFeatureBits(this.header.autoclearFeatures);
    if ((bits & ~QED_AUTOCLEAR_FEATURE_MASK) === 0n) return;
    this.header.autoclearFeatures = qedFeatureBytes(bits & QED_AUTOCLEAR_FEATURE_MASK);
    await writeQedHeader(this.file, this.header);
    await this.file.flush();
  }

  /**
   * Runs the check an image with the need-check bit set requires: repairs it when writable,
   * else reads invalid entries as unallocated.
   */
  async recover(warn: (m: string) => void): Promise<void> {
    if (!this.needsCheck) return;
    if (this.readOnly) {
      this.tables.lenient = true;
      warn(`The qed image ${this.file.name} was not closed cleanly; it is read as a repair would leave it (open it read-write to repair it)`);
      return;
    }
    const r = await this.repair();
    if (r.corruptionsFixed > 0 || r.corruptions > 0) {
      warn(
        `The qed image ${this.file.name} was not closed cleanly: ${r.corruptionsFixed} invalid entries repaired` +
          (r.corruptions > 0 ? `, ${r.corruptions} problems remain (run check)` : ""),
      );
    }
  }

  /** One fixing pass, marking the image clean when nothing is left to repair. */
  private async repair(): Promise<CheckResult> {
    const r = await checkQedTables(this.tables, true);
    if (r.corruptions === 0 && r.checkErrors === 0) await this.markClean();
    return r;
  }

  getMapping(offset: number, length: number): Promise<Mapping> {
    return this.tables.getMapping(offset, length);
  }

  allocate(offset: number, length: number): Promise<Allocation> {
    return this.tables.allocate(offset, length);
  }

  zeroRange(offset: number, length: number): Promise<number> {
    return this.tables.zeroRange(offset, length);
  }

  /** Grows the disk (as qemu-img, QED images cannot shrink). */
  async resize(newSize: number): Promise<void> {
    const size = Math.ceil(newSize / 512) * 512;
    if (size < this.size) {
      throw new UnsupportedFeatureError(`Cannot shrink qed image from ${this.size} to ${size} bytes: shrinking is not supported`, {
        format: "qed",
      });
    }
    const max = qedMaxImageSize(this.header.clusterSize, this.header.tableSize);
    if (size > max) {
      throw new RangeError(`Invalid image size ${size}: this qed image addresses at most ${max} bytes`);
    }
    if (size === this.size) return;
    this.header.imageSize = size;
    await writeQedHeader(this.file, this.header);
    await this.file.flush();
    this.size = size;
    this.tables.size = size;
  }

  /** Names `ref` as the backing file (rebase), after flushing everything written so far. */
  async setBacking(ref: BackingReference | undefined): Promise<void> {
    await this.flush();
    this.header = await writeQedBacking(this.file, this.header, this.headerBytes, ref);
    this.backing = ref ? { name: ref.name, format: ref.format === "raw" ? "raw" : undefined } : undefined;
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.file.flush();
    if (this.ownsNeedCheck) await this.markClean();
  }

  async check(repair?: RepairMode): Promise<CheckResult> {
    if (!repair) return checkQedTables(this.tables, false);
    // qemu-img repairs the same way for `-r leaks` and `-r all`, then checks again.
    const first = await this.repair();
    if (first.corruptionsFixed === 0) return first;
    const again = await checkQedTables(this.tables, false);
    return { ...again, corruptionsFixed: first.corruptionsFixed, messages: [...first.messages, ...again.messages] };
  }

  async info(): Promise<FormatInfo> {
    // qemu-img 7.2 shows no format-specific block for qed.
    return { clusterSize: this.allocationUnit, dirty: this.needsCheck };
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

const MAGIC_AT = QED_HEADER.offsetOf("magic");

/** The QED driver. */
export const qedDriver: FormatDriver = {
  name: "qed",
  createOptions: QED_CREATE_OPTIONS,
  measure: measureQed,
  supportsBacking: true,
  probe(input: ProbeInput): number {
    const h = input.head;
    if (h.length < QED_HEADER_SIZE) return 0;
    const magic = (h[MAGIC_AT] | (h[MAGIC_AT + 1] << 8) | (h[MAGIC_AT + 2] << 16) | (h[MAGIC_AT + 3] << 24)) >>> 0;
    return magic === QED_MAGIC ? 100 : 0;
  },
  async open(ctx: OpenContext): Promise<FormatInstance> {
    const fileSize = await ctx.file.size();
    const layout = await readQedLayout(ctx.file, fileSize);
    const inst = new QedInstance(ctx.file, layout, ctx.readOnly);
    if (!ctx.readOnly) await inst.clearUnknownAutoclear();
    inst.tables = await QedTables.load(ctx.file, layout, fileSize, {
      beforeChange: () => inst.beforeChange(),
      get hasBacking() {
        return inst.backing !== undefined;
      },
    });
    await inst.recover(ctx.warn);
    return inst;
  },
  create(ctx: CreateContext): Promise<void> {
    return createQed(ctx);
  },
};
