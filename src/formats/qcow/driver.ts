/**
 * The QCOW (version 1) format driver: `qcow` in qemu-img.
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
import type { Allocation, Mapping, SpecialMapping } from "../../core/mapping.js";
import type { IoBackend } from "../../io/backend.js";
import { checkQcow } from "./check.js";
import { QCOW_CREATE_OPTIONS, createQcow } from "./create.js";
import { readQcowLayout, type QcowLayout } from "./header.js";
import { QCOW_HEADER, QCOW_HEADER_SIZE, QCOW_MAGIC, QCOW_VERSION } from "./layout.js";
import { QcowTables } from "./tables.js";
import { measureQcow } from "./measure.js";

class QcowInstance implements FormatInstance {
  readonly format = "qcow";
  readonly size: number;
  readonly allocationUnit: number;
  readonly backing?: BackingReference;

  constructor(
    private readonly file: IoBackend,
    private readonly layout: QcowLayout,
    private readonly tables: QcowTables,
    private readonly readOnly: boolean,
  ) {
    this.size = layout.size;
    this.allocationUnit = layout.geometry.clusterSize;
    if (layout.backingName !== undefined) this.backing = { name: layout.backingName };
  }

  getMapping(offset: number, length: number): Promise<Mapping> {
    return this.tables.getMapping(offset, length);
  }

  allocate(offset: number, length: number): Promise<Allocation> {
    return this.tables.allocate(offset, length);
  }

  readSpecial(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void> {
    return this.tables.readSpecial(mapping, offset, into);
  }

  writeCompressed(offset: number, data: Uint8Array): Promise<boolean> {
    return this.tables.writeCompressed(offset, data);
  }

  /**
   * Empties the image after `qemu-img commit` (qemu empties qcow images too): no L2 table stays
   * linked and the file keeps only its header, backing file name and L1 table.
   */
  makeEmpty(): Promise<void> {
    const h = this.layout.header;
    const nameEnd = h.backingFileOffset !== 0 ? h.backingFileOffset + h.backingFileSize : 0;
    return this.tables.makeEmpty(nameEnd);
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.file.flush();
  }

  check(repair?: RepairMode): Promise<CheckResult> {
    return checkQcow(this.tables, this.file, this.layout, repair);
  }

  async info(): Promise<FormatInfo> {
    // qemu-img 7.2 shows no format-specific block for qcow.
    return { clusterSize: this.layout.geometry.clusterSize, encrypted: false };
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

function u32be(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

const MAGIC_AT = QCOW_HEADER.offsetOf("magic");
const VERSION_AT = QCOW_HEADER.offsetOf("version");

/** The QCOW (v1) driver. */
export const qcowDriver: FormatDriver = {
  name: "qcow",
  createOptions: QCOW_CREATE_OPTIONS,
  measure: measureQcow,
  supportsBacking: true,
  probe(input: ProbeInput): number {
    const h = input.head;
    if (h.length < QCOW_HEADER_SIZE) return 0;
    return u32be(h, MAGIC_AT) === QCOW_MAGIC && u32be(h, VERSION_AT) === QCOW_VERSION ? 100 : 0;
  },
  async open(ctx: OpenContext): Promise<FormatInstance> {
    const fileSize = await ctx.file.size();
    const layout = await readQcowLayout(ctx.file, fileSize);
    const tables = await QcowTables.load(ctx.file, layout, fileSize);
    return new QcowInstance(ctx.file, layout, tables, ctx.readOnly);
  },
  create(ctx: CreateContext): Promise<void> {
    return createQcow(ctx);
  },
};
