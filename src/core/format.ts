/**
 * The contracts between the engine and a format driver. A driver translates addresses and
 * keeps metadata; it never moves guest data (the engine does).
 * @module
 */
import type { FileOpener, IoBackend } from "../io/backend.js";
import type { Kernel } from "../kernel/kernel.js";
import type { Allocation, Mapping, SpecialMapping } from "./mapping.js";
import type { SequentialWriter } from "./sequential-writer.js";
import type { MeasureBitmap, MeasureInput, MeasureResult } from "./measure.js";

/** What a driver's `probe` sees of a file. */
export interface ProbeInput {
  /** The first bytes of the file (up to 64 KiB, fewer if the file is shorter). */
  readonly head: Uint8Array;
  /** The last 512 bytes of the file (fewer if the file is shorter). */
  readonly tail: Uint8Array;
  /** File length in bytes. */
  readonly fileSize: number;
  /** The file's label (path), for drivers that look at extensions or descriptors. */
  readonly name: string;
}

/** The type of one create option value. */
export type CreateOptionType = "size" | "number" | "bool" | "string" | "enum";

/** A `-o name=value` option a driver accepts at create time (qemu-img's names). */
export interface CreateOptionSpec {
  readonly name: string;
  readonly type: CreateOptionType;
  readonly help: string;
  /** Allowed values for `enum`. */
  readonly values?: readonly string[];
  /** Default as text, shown by `--help`. */
  readonly defaultText?: string;
}

/** Parsed create option values. Sizes and numbers are numbers, bools booleans. */
export type CreateOptionValues = Readonly<Record<string, string | number | boolean>>;

/** A backing file reference as an image header stores it. */
export interface BackingReference {
  /** The name exactly as stored. */
  readonly name: string;
  /** The format as stored, if the format records one. */
  readonly format?: string;
}

/** Everything a driver receives to open an image. */
export interface OpenContext {
  readonly file: IoBackend;
  readonly readOnly: boolean;
  /** True when the user named the format instead of letting vdisk probe it. */
  readonly explicitFormat: boolean;
  /** Driver-specific open options (`copy-on-read`, …). */
  readonly options: Readonly<Record<string, string>>;
  /** Opens files the image names (external data files, extents), already filtered by policy. */
  readonly openFile: FileOpener;
  readonly kernel: Kernel;
  /** Reports a non-fatal problem (printed by the CLI as a warning). */
  warn(message: string): void;
}

/** Everything a driver receives to create an image. */
export interface CreateContext {
  /** An empty, writable file. */
  readonly file: IoBackend;
  /** Virtual size in bytes. */
  readonly size: number;
  readonly options: CreateOptionValues;
  /** The backing file to record, already validated (its size is known). */
  readonly backing?: BackingReference & { readonly size: number };
  readonly openFile: FileOpener;
  readonly kernel: Kernel;
  warn(message: string): void;
}

/** Repair mode of `check`, as `qemu-img check -r`. */
export type RepairMode = "leaks" | "all";

/**
 * The result of `check`, with qemu-img's JSON field meanings.
 * `corruptions`/`leaks` count what remains after any repair.
 */
export interface CheckResult {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset?: number;
  totalClusters?: number;
  allocatedClusters?: number;
  fragmentedClusters?: number;
  compressedClusters?: number;
  /** One line per problem found, in the order found. */
  messages: string[];
}

/** A qcow2-style internal snapshot, for `info`. */
export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  icount?: number;
}

/** What a driver reports for `info`. Field names map onto qemu-img's JSON in the CLI. */
export interface FormatInfo {
  clusterSize?: number;
  dirty?: boolean;
  /**
   * The format keeps no state worth a dirty flag (qemu's read-only drivers without driver info:
   * bochs, cloop, dmg); `info` then shows no `dirty-flag`, as qemu-img.
   */
  noDirtyFlag?: boolean;
  encrypted?: boolean;
  snapshots?: SnapshotInfo[];
  /** `format-specific` of qemu-img info: `{ type, data }`. */
  formatSpecific?: { type: string; data: Record<string, unknown> };
  /**
   * The image's persistent dirty bitmaps (`[]`: none yet); absent when the format (or this
   * version of it) cannot keep any. Measure uses it for the `bitmaps` figure.
   */
  persistentBitmaps?: MeasureBitmap[];
}

/** What a driver's `amend` may ask of the engine (which holds no lock while amend runs). */
export interface AmendContext {
  /** The image's label, for messages. */
  readonly name: string;
  /** Flushes the device (engine and instance). */
  flush(): Promise<void>;
  /** Resizes through the engine (its checks and locking). */
  resize(newSize: number): Promise<void>;
}

/**
 * One open image. Created by `FormatDriver.open`; used only by the engine ({@link ImageDevice}).
 *
 * Contract of every guest range method: `offset` < `size`, `length` > 0, and the range does not
 * cross `size`. Mappings may cover less than asked, never more; the engine asks again.
 */
export interface FormatInstance {
  readonly format: string;
  /** Virtual disk size in bytes. */
  readonly size: number;
  /**
   * The unit of allocation in guest bytes (cluster, subcluster, grain, block). Writes into
   * unallocated space are widened to this alignment by the engine.
   */
  readonly allocationUnit: number;
  /** The backing file this image names, if any. */
  readonly backing?: BackingReference;
  /** Where `offset` lives; covers at most `length` bytes. */
  getMapping(offset: number, length: number): Promise<Mapping>;
  /**
   * Makes `[offset, offset+length)` writable. `offset` and `length` are multiples of
   * `allocationUnit` (the last unit may end at `size`). The engine fills the returned space with
   * the full guest contents, then calls `commit`. The mapping may cover less than asked.
   * Absent on read-only formats.
   */
  allocate?(offset: number, length: number): Promise<Allocation>;
  /** Decodes a `special` mapping: fills `into` with guest bytes from `offset` on. */
  readSpecial?(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void>;
  /**
   * Marks whole allocation units in the range as reading zeros without writing data (zero
   * clusters). Returns the bytes handled from `offset` (0 when the format cannot at this point;
   * the engine then writes zeros).
   */
  zeroRange?(offset: number, length: number, unmap: boolean): Promise<number>;
  /**
   * Releases whole units. Discard may not change what the guest reads unless the format can
   * represent that state: each unit afterwards reads as zeros (a zero cluster, a zero block, or
   * unallocated space in an image without a backing file) or, where the format cannot record
   * that, stays allocated with its data. A unit must never fall through to the backing image
   * (qcow2 version 2 over a backing file keeps its clusters, as qemu does).
   */
  discard?(offset: number, length: number): Promise<void>;
  /**
   * Stores one whole allocation unit compressed (convert -c). Returns false if not worthwhile
   * (the engine then writes it plainly). `packed` is what {@link compress} returned for this
   * unit, when the driver has it: the driver stores those bytes instead of compressing again.
   */
  writeCompressed?(offset: number, data: Uint8Array, packed?: Uint8Array): Promise<boolean>;
  /**
   * Compresses one unit for {@link writeCompressed} without touching the image: the engine
   * calls it outside its lock, so several units compress at once (on the runtime's codec
   * threads). Returns `undefined` when the unit is not worth storing compressed.
   */
  compress?(offset: number, data: Uint8Array): Promise<Uint8Array | undefined>;
  /**
   * The unit `writeCompressed` takes when it differs from `allocationUnit` (qcow2 with
   * extended L2 entries allocates subclusters but compresses whole clusters).
   */
  readonly compressionUnit?: number;
  /**
   * When true, the engine may hold several allocations at once: `allocate` can be called again
   * (for a disjoint range) before an earlier allocation's `commit`, and the data writes between
   * run concurrently. Allocations and commits themselves are still serialised. A driver sets it
   * only when `allocate` reserves its host space immediately and `commit` touches nothing but
   * the metadata of its own range.
   */
  readonly concurrentAllocation?: boolean;
  /**
   * When true, a write into a range that reads as unallocated zeros (a `zero` mapping that is
   * not `allocated`) allocates nothing if the whole widened allocation unit stays all zeros:
   * the range already reads as the data written (GOW's zero-block rule).
   */
  readonly skipZeroAllocation?: boolean;
  /**
   * When true and the image is open writable, the engine copies data it read through to the
   * backing image into this image (whole allocation units, via `allocate`), as qemu's
   * copy-on-read. Set by drivers that offer copy-on-read as an open option.
   */
  readonly copyOnRead?: boolean;
  /**
   * False when every guest offset is preallocated, so writes never allocate (raw). Default true.
   * The capability `allocatesOnWrite` comes from it.
   */
  readonly allocatesOnWrite?: boolean;
  /** `qemu-img resize` takes multiples of this many bytes (raw: 1). Default 512 (capability). */
  readonly resizeAlignment?: number;
  /** The image keeps internal snapshots (capability `snapshots`). Default false. */
  readonly internalSnapshots?: boolean;
  /**
   * How `setBacking` may be used: `any` (record any backing file or none; the default when
   * `setBacking` exists) or `flatten` (only `undefined`, after every range that read through
   * to the backing image has been copied into this image).
   */
  readonly backingUpdate?: "any" | "flatten";
  /** Options `amend` accepts (capability `amend`); usually the driver's `amendOptions`. */
  readonly amendOptions?: readonly CreateOptionSpec[];
  /**
   * Applies `qemu-img amend` options, every one checked before anything changes. The engine
   * calls it with no lock held and no other I/O running. Absent when the format has none.
   */
  amend?(options: ReadonlyArray<readonly [string, string]>, ctx: AmendContext): Promise<void>;
  /**
   * Changes the virtual size to `newSize` bytes (the driver may round it up to its unit and
   * reports the result in `size`). Absent when the format cannot resize.
   */
  resize?(newSize: number): Promise<void>;
  /**
   * Records `ref` as the image's backing file (`undefined`: none), the last step of
   * `qemu-img rebase`. Guest data is not touched: ranges that read through to the backing image
   * keep doing so, from the new one once the image is reopened. The change is durable when the
   * promise resolves and is written after everything written before the call (the caller has
   * copied what must be copied). Absent when the format cannot record a new backing file.
   */
  setBacking?(ref: BackingReference | undefined): Promise<void>;
  /**
   * Releases every range of this image so that the whole disk reads through to the backing
   * image (what `qemu-img commit` does to the committed image). Absent when the format cannot.
   */
  makeEmpty?(): Promise<void>;
  /**
   * The write lifecycle's start: the engine calls it once before the first change after open
   * and after each completed {@link flush}, before any write, zero write, discard, compressed
   * write, resize, backing change, emptying, amend or copy-on-read reaches the instance, and
   * before data the engine writes straight into mapped host space (which the driver never
   * sees). Concurrent first changes share one call; when it rejects they fail and the next
   * change calls it again. Never called on a read-only open: the engine refuses changes there.
   *
   * This is where a format marks an image as being written (an in-use flag, a new write GUID
   * or CID). Whether a call after a flush does anything again is the format's choice (a
   * per-session mark may be set once per open). A mark that must be set only when metadata
   * changes (qcow2's lazy-refcounts dirty bit, QED's need-check bit: an overwrite in place
   * leaves them clear, as in QEMU) stays on the driver's metadata path, which the engine cannot
   * see. Repairs (`check` with a repair mode, repairs at open) are the driver's own business,
   * marks included: a repair must see the image as it is, before a first-write mark rewrites
   * part of it.
   */
  beginWrites?(): Promise<void>;
  /**
   * Makes metadata durable (and flushes the file). Once it resolves, the engine considers the
   * write session over: the next change calls {@link beginWrites} again.
   */
  flush(): Promise<void>;
  check?(repair?: RepairMode): Promise<CheckResult>;
  info(): Promise<FormatInfo>;
  /** Flushes and releases. Does not close the backing chain. */
  close(): Promise<void>;
}

/** A format: probe, open, create. */
export interface FormatDriver {
  /** The qemu-img format name, e.g. `qcow2`. */
  readonly name: string;
  /** Other names accepted by `-f`/`-O` (e.g. `vhd` for `vpc`). */
  readonly aliases?: readonly string[];
  /**
   * How sure the driver is that the file is its format: 0 = no, 100 = magic matched.
   * Must be fast and must not throw.
   */
  probe(input: ProbeInput): number;
  open(ctx: OpenContext): Promise<FormatInstance>;
  create?(ctx: CreateContext): Promise<void>;
  readonly createOptions: readonly CreateOptionSpec[];
  /** True when the format can record a backing file at create time. */
  readonly supportsBacking?: boolean;
  /**
   * Writes the format front to back into an append-only sink (pipes, `WritableStream`s).
   * Absent when the format's layout needs a seekable file.
   */
  readonly sequentialWriter?: SequentialWriter;
  /**
   * The bytes a new image of this format needs (`qemu-img measure`): for an empty image of
   * `input.size`, or for a convert of a source whose data ranges are `input.allocated`.
   * `required` is a file size a convert of a fully allocated source does not exceed;
   * `fullyAllocated` one that writing every guest byte does not exceed. Pure arithmetic: no I/O.
   * Bad option values throw `ImageError` (`ERR_INVALID_OPTION`).
   */
  measure?(input: MeasureInput): MeasureResult;
  /** The `-o` options measure accepts, when they differ from `createOptions`. */
  readonly measureOptions?: readonly CreateOptionSpec[];
  /** Options `qemu-img amend` takes for this format (`amend -o help` lists them). */
  readonly amendOptions?: readonly CreateOptionSpec[];
  /**
   * Probing picks this driver when no other recognises a file (raw). A writable open of an
   * image probed that way refuses writes that would make its first sector look like another
   * format.
   */
  readonly fallback?: boolean;
}
