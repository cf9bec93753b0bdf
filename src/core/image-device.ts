/**
 * The one I/O engine: implements every {@link BlockDevice} operation for every format on top
 * of a {@link FormatInstance}'s address translation.
 * @module
 */
import { CorruptImageError, ImageError, UnsupportedFeatureError } from "../errors.js";
import { readIntoZeroPadded } from "../io/helpers.js";
import type { Kernel } from "../kernel/kernel.js";
import type { AmendCallOptions, BlockDevice, Extent, WriteZeroesOptions } from "./block-device.js";
import type { DeviceCapabilities } from "./capabilities.js";
import { progressReporter, throwIfAborted } from "./abort.js";
import { firstDifference } from "./bytes.js";
import type { BackingReference, CheckResult, FormatInfo, FormatInstance, RepairMode } from "./format.js";
import type { Allocation, Mapping } from "./mapping.js";
import { deviceStream, type DeviceStreamOptions } from "./device-stream.js";
import { Mutex } from "./mutex.js";
import { settleAfter, settleAll } from "./settle.js";

/** Options of {@link ImageDevice}. */
export interface ImageDeviceOptions {
  readOnly: boolean;
  kernel: Kernel;
  /** The opened backing image, if the format named one. */
  backing?: BlockDevice;
  /** Most host reads in flight for one request. Default 8. */
  maxParallel?: number;
  /**
   * Called before a write that changes bytes of the first 512; throws to refuse it. Set for raw
   * images opened writable without a named format, so a guest cannot turn them into another format.
   */
  guardFirstSector?: (newHead: Uint8Array) => void;
  /** Label for messages (the file name). */
  name: string;
}

const ZERO_CHUNK = 1 << 20;
let zeroChunk: Uint8Array | undefined;
function zeros(length: number): Uint8Array {
  zeroChunk ??= new Uint8Array(ZERO_CHUNK);
  return length <= ZERO_CHUNK ? zeroChunk.subarray(0, length) : new Uint8Array(length);
}

/** The engine. One per open image of a chain; the backing chain is a chain of these. */
export class ImageDevice implements BlockDevice {
  readonly instance: FormatInstance;
  readonly backing?: BlockDevice;
  readonly readOnly: boolean;
  readonly name: string;
  private readonly kernel: Kernel;
  private readonly maxParallel: number;
  private readonly allocLock = new Mutex();
  /** Allocations whose data is being written outside the lock (`concurrentAllocation`). */
  private readonly inFlight = new Set<InFlightAllocation>();
  private readonly guardFirstSector?: (newHead: Uint8Array) => void;
  /** Settles when the compressed writes issued so far have been stored (their order). */
  private compressedTail: Promise<void> = Promise.resolve();
  private closed = false;
  /** The write lifecycle: "writing" once `beginWrites` ran since open or the last flush. */
  private writeState: "clean" | "writing" = "clean";
  /** The `beginWrites` call in progress, shared by the changes that wait for it. */
  private beginning?: Promise<void>;

  constructor(instance: FormatInstance, options: ImageDeviceOptions) {
    this.instance = instance;
    this.backing = options.backing;
    this.readOnly = options.readOnly;
    this.kernel = options.kernel;
    this.maxParallel = options.maxParallel ?? 8;
    this.guardFirstSector = options.guardFirstSector;
    this.name = options.name;
  }

  get format(): string {
    return this.instance.format;
  }

  get size(): number {
    return this.instance.size;
  }

  get backingFile(): BackingReference | undefined {
    return this.instance.backing;
  }

  /** Derived from what the instance implements; see {@link DeviceCapabilities}. */
  get capabilities(): DeviceCapabilities {
    const inst = this.instance;
    const writable = !this.readOnly && typeof inst.allocate === "function";
    const backingUpdate = inst.setBacking ? (inst.backingUpdate ?? "any") : undefined;
    const compress = writable && typeof inst.writeCompressed === "function";
    return {
      write: writable,
      resize: writable && typeof inst.resize === "function",
      resizeAlignment: inst.resizeAlignment ?? 512,
      backing: writable && backingUpdate === "any",
      flatten: writable && backingUpdate !== undefined,
      compress,
      compressionUnit: compress ? (inst.compressionUnit ?? inst.allocationUnit) : 0,
      zero: writable && typeof inst.zeroRange === "function",
      discard: writable && typeof inst.discard === "function",
      overlappingWrites: writable && (inst.allocatesOnWrite === false || !!inst.concurrentAllocation),
      allocatesOnWrite: inst.allocatesOnWrite ?? true,
      allocationUnit: inst.allocationUnit,
      snapshots: !!inst.internalSnapshots,
      check: typeof inst.check === "function",
      amend: writable && inst.amend ? (inst.amendOptions ?? []) : [],
      makeEmpty: writable && typeof inst.makeEmpty === "function",
      sequentialOnly: false,
    };
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`${what}: offset ${offset} and length ${length} must be non-negative integers`);
    }
    if (offset + length > this.size) {
      throw new RangeError(`${what}: range ${offset}+${length} ends past the disk size ${this.size}`);
    }
  }

  private checkWritable(what: string): void {
    if (this.readOnly) {
      throw new ImageError("ERR_READ_ONLY", `Cannot ${what}: ${this.name} is open read-only`, {
        file: this.name,
        format: this.format,
      });
    }
  }

  /**
   * The write lifecycle: before the first change after open or after a completed flush, tells
   * the instance (`beginWrites`) once, however many changes start at the same time; they all
   * wait for it. A failure rejects them and leaves the state clean, so the next change tries
   * again. Called by every mutating method after its argument checks and never under the
   * allocation lock (`beginWrites` runs under it, so it never overlaps a flush or a metadata
   * operation). A change that overlaps a flush counts as one before it.
   */
  private async ensureWriting(): Promise<void> {
    if (this.writeState === "writing") return;
    this.beginning ??= (async () => {
      try {
        const inst = this.instance;
        await this.exclusive(async () => {
          if (inst.beginWrites) await inst.beginWrites();
          this.writeState = "writing";
        });
      } finally {
        this.beginning = undefined;
      }
    })();
    await this.beginning;
  }

  private async mapping(offset: number, length: number): Promise<Mapping> {
    const m = await this.instance.getMapping(offset, length);
    if (m.kind !== "eof" && !(m.length > 0)) {
      throw new CorruptImageError(
        `${this.format} driver returned an empty ${m.kind} mapping at guest offset ${offset}`,
        { format: this.format, file: this.name },
      );
    }
    return m;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    this.checkRange(offset, into.length, "read");
    await this.readRange(offset, into, this.copyOnRead);
  }

  /** Copy-on-read applies: the format asks for it, the image is writable and has a backing image. */
  private get copyOnRead(): boolean {
    return !!this.instance.copyOnRead && !this.readOnly && !!this.backing;
  }

  /** Reads guest bytes as the image currently maps them; `cor` copies backing ranges up afterwards. */
  private async readRange(offset: number, into: Uint8Array, cor = false): Promise<void> {
    const pending: Promise<void>[] = [];
    const copyUp: Array<[number, number]> = [];
    let pos = 0;
    // A mapping that throws while reads are in flight must still wait for them (settleAfter).
    await settleAfter(pending, async () => {
      while (pos < into.length) {
        const m = await this.mapping(offset + pos, into.length - pos);
        if (m.kind === "eof") {
          into.fill(0, pos);
          break;
        }
        const len = Math.min(m.length, into.length - pos);
        const sub = into.subarray(pos, pos + len);
        const guest = offset + pos;
        switch (m.kind) {
          case "data":
            pending.push(readIntoZeroPadded(m.file, m.fileOffset, sub));
            break;
          case "zero":
            sub.fill(0);
            break;
          case "backing":
            pending.push(this.readBacking(guest, sub));
            if (cor) copyUp.push([guest, len]);
            break;
          case "special":
            if (!this.instance.readSpecial) {
              throw new UnsupportedFeatureError(`Cannot read ${this.format} image: ${m.what} data is not supported`, {
                format: this.format,
                file: this.name,
              });
            }
            pending.push(this.instance.readSpecial(m, guest, sub));
            break;
        }
        pos += len;
        if (pending.length >= this.maxParallel) await settleAll(pending.splice(0));
      }
    });
    if (copyUp.length > 0) await this.ensureWriting();
    for (const [start, length] of copyUp) await this.copyUp(start, length);
  }

  /**
   * Copy-on-read: writes what `[start, start+length)` reads from the backing image into this
   * image. Runs under the allocation lock and re-checks the mapping there, so a range a guest
   * write allocated meanwhile is never overwritten with older backing data.
   */
  private async copyUp(start: number, length: number): Promise<void> {
    await this.exclusive(() =>
      this.copyBackingRuns(start, start + length, {}, async (pos, data) => {
        let done = 0;
        while (done < data.length) done += await this.allocatingWrite(pos + done, data.subarray(done));
      }),
    );
  }

  /** Reads without range checks or copy-on-read (for the engine's own read-modify-write). */
  private async readPlain(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readRange(offset, buf);
    return buf;
  }

  /** Reads through to the backing image; past its end (or with none) the bytes are zeros. */
  private async readBacking(offset: number, into: Uint8Array): Promise<void> {
    const b = this.backing;
    const inBacking = b ? Math.max(0, Math.min(into.length, b.size - offset)) : 0;
    if (inBacking > 0) await b!.readInto(offset, into.subarray(0, inBacking));
    into.fill(0, inBacking);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkWritable("write");
    this.checkRange(offset, data.length, "write");
    if (offset < 512 && this.guardFirstSector && data.length > 0) await this.checkFirstSector(offset, data);
    await this.ensureWriting();
    let pos = 0;
    while (pos < data.length) {
      const m = await this.mapping(offset + pos, data.length - pos);
      if (m.kind === "data" && !m.shared) {
        const len = Math.min(m.length, data.length - pos);
        await m.file.write(m.fileOffset, data.subarray(pos, pos + len));
        pos += len;
      } else if (m.kind === "eof") {
        throw new CorruptImageError(`${this.format} driver reports end of disk at ${offset + pos}`, {
          format: this.format,
        });
      } else if (this.instance.concurrentAllocation) {
        pos += await this.overlappedAllocatingWrite(offset + pos, data.subarray(pos));
      } else {
        pos += await this.allocLock.run(() => this.allocatingWrite(offset + pos, data.subarray(pos)));
      }
    }
  }

  private async checkFirstSector(offset: number, data: Uint8Array): Promise<void> {
    const head = await this.read(0, Math.min(512, this.size));
    const n = Math.min(head.length - offset, data.length);
    if (n > 0) head.set(data.subarray(0, n), offset);
    this.guardFirstSector!(head);
  }

  /**
   * Writes the start of `data` at `offset` where the range is not writable in place: widens it
   * to allocation units, fills the widened parts with the current contents, allocates, writes,
   * commits. Runs under the allocation lock. Returns the bytes of `data` consumed.
   */
  private async allocatingWrite(offset: number, data: Uint8Array): Promise<number> {
    const p = await this.prepareAllocation(offset, data, false);
    if (p.kind === "alloc") {
      await p.alloc.mapping.file.write(p.alloc.mapping.fileOffset, p.buf);
      await p.alloc.commit();
    }
    return p.kind === "wait" ? 0 : p.consumed;
  }

  /**
   * The same for drivers with `concurrentAllocation`: the allocation and the commit run under
   * the lock, the data write between them does not, so several allocating writes move data at
   * once. A range with an allocation in flight is waited for, never allocated twice.
   */
  private async overlappedAllocatingWrite(offset: number, data: Uint8Array): Promise<number> {
    for (;;) {
      const p = await this.allocLock.run(() => this.prepareAllocation(offset, data, true));
      if (p.kind === "wait") {
        await p.until;
        continue;
      }
      if (p.kind === "done") return p.consumed;
      try {
        await p.alloc.mapping.file.write(p.alloc.mapping.fileOffset, p.buf);
        await this.allocLock.run(() => p.alloc.commit());
      } finally {
        // A failed data write leaves the allocation uncommitted: leaked space, never garbage.
        this.inFlight.delete(p.entry!);
        p.entry!.finish();
      }
      return p.consumed;
    }
  }

  /**
   * Runs under the allocation lock: maps `offset` again, writes in place when the range became
   * writable meanwhile, else widens to allocation units, reads the widened head and tail, and
   * allocates. With `track`, waits on (returns) an intersecting allocation in flight, and
   * registers the new one.
   */
  private async prepareAllocation(offset: number, data: Uint8Array, track: boolean): Promise<PreparedAllocation> {
    const inst = this.instance;
    // Another writer may have allocated this range while we waited for the lock.
    const m = await this.mapping(offset, data.length);
    if (m.kind === "data" && !m.shared) {
      const len = Math.min(m.length, data.length);
      await m.file.write(m.fileOffset, data.subarray(0, len));
      return { kind: "done", consumed: len };
    }
    if (m.kind === "eof") throw new RangeError(`write past the end of the disk at ${offset}`);
    if (!inst.allocate) {
      throw new ImageError("ERR_READ_ONLY", `Cannot write: the ${this.format} driver cannot allocate space`, {
        format: this.format,
      });
    }
    const unit = inst.allocationUnit;
    let runEnd = offset + Math.min(m.length, data.length);
    const aStart = offset - (offset % unit);
    let aEnd = Math.min(this.size, Math.ceil(runEnd / unit) * unit);
    if (track) {
      for (const f of this.inFlight) if (f.start < aEnd && aStart < f.end) return { kind: "wait", until: f.done };
    }
    // Read what the widened head and tail hold now, before allocation changes the mapping.
    const head = offset > aStart ? await this.readPlain(aStart, offset - aStart) : undefined;
    let tail = aEnd > runEnd ? await this.readPlain(runEnd, aEnd - runEnd) : undefined;
    if (inst.skipZeroAllocation && m.kind === "zero" && !m.allocated) {
      // Units that would hold only zeros stay unallocated (they read zeros already); only the
      // first run of units holding data is allocated now, the rest is handled by the caller's loop.
      let full = data.subarray(0, runEnd - offset);
      if (head || tail) {
        full = new Uint8Array(aEnd - aStart);
        if (head) full.set(head, 0);
        full.set(data.subarray(0, runEnd - offset), offset - aStart);
        if (tail) full.set(tail, runEnd - aStart);
      }
      const k = this.kernel;
      const first = k.granuleRunEnd(full, 0, full.length, unit);
      const probe = Math.min(unit, full.length);
      if (k.findNonZero(full, 0, probe) === probe) return { kind: "done", consumed: Math.min(aStart + first, runEnd) - offset };
      if (aStart + first < aEnd) {
        aEnd = aStart + first;
        runEnd = aEnd;
        tail = undefined;
      }
    }
    const alloc = await inst.allocate(aStart, aEnd - aStart);
    const got = alloc.mapping.length;
    if (!(got > 0) || got > aEnd - aStart || (aStart + got < aEnd && got % unit !== 0)) {
      throw new CorruptImageError(`${this.format} driver allocated ${got} bytes for a request of ${aEnd - aStart}`, {
        format: this.format,
      });
    }
    const allocEnd = aStart + got;
    if (allocEnd <= offset) {
      throw new CorruptImageError(`${this.format} driver allocated less than the head of a write`, {
        format: this.format,
      });
    }
    const wEnd = Math.min(runEnd, allocEnd);
    const consumed = wEnd - offset;
    let buf: Uint8Array;
    if (!head && wEnd === allocEnd) {
      buf = data.subarray(0, consumed);
    } else {
      buf = new Uint8Array(got);
      if (head) buf.set(head, 0);
      buf.set(data.subarray(0, consumed), offset - aStart);
      if (tail && allocEnd > runEnd) buf.set(tail.subarray(0, allocEnd - runEnd), runEnd - aStart);
    }
    let entry: InFlightAllocation | undefined;
    if (track) {
      let finish!: () => void;
      const done = new Promise<void>((resolve) => (finish = resolve));
      entry = { start: aStart, end: allocEnd, done, finish };
      this.inFlight.add(entry);
    }
    return { kind: "alloc", consumed, alloc, buf, entry };
  }

  async writeZeroes(offset: number, length: number, options: WriteZeroesOptions = {}): Promise<void> {
    this.checkWritable("write zeroes");
    this.checkRange(offset, length, "write zeroes");
    await this.ensureWriting();
    const end = offset + length;
    let pos = offset;
    const unit = this.instance.allocationUnit;
    while (pos < end) {
      const m = await this.mapping(pos, end - pos);
      if (m.kind === "eof") break;
      const len = Math.min(m.length, end - pos);
      // Already zero here and (when the format could expose backing data later) explicitly so.
      if (m.kind === "zero" || (m.kind === "backing" && !this.backing)) {
        pos += len;
        continue;
      }
      const alignedStart = Math.ceil(pos / unit) * unit;
      const alignedEnd = end === this.size ? end : end - (end % unit);
      if (this.instance.zeroRange && pos === alignedStart && alignedEnd > pos) {
        const done = await this.exclusive(() => this.instance.zeroRange!(pos, alignedEnd - pos, !!options.unmap));
        if (done > 0) {
          pos += done;
          continue;
        }
      }
      // Write explicit zeros up to the next unit boundary (or the run's end) and look again.
      const stop = Math.min(pos + len, alignedStart > pos ? alignedStart : end, pos + ZERO_CHUNK);
      await this.write(pos, zeros(stop - pos));
      pos = stop;
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable("discard");
    this.checkRange(offset, length, "discard");
    await this.ensureWriting();
    const unit = this.instance.allocationUnit;
    const start = Math.ceil(offset / unit) * unit;
    const end = offset + length === this.size ? this.size : Math.floor((offset + length) / unit) * unit;
    if (end > start && this.instance.discard) {
      await this.exclusive(() => this.instance.discard!(start, end - start));
    }
  }

  async writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    this.checkWritable("write compressed");
    this.checkRange(offset, data.length, "write compressed");
    await this.ensureWriting();
    const inst = this.instance;
    const unit = inst.compressionUnit ?? inst.allocationUnit;
    if (!inst.writeCompressed || offset % unit !== 0) {
      await this.write(offset, data);
      return;
    }
    // Every unit starts compressing at once (outside the lock: the codec runs them in
    // parallel); they are stored one by one, in the order the calls arrived, so a copy in guest
    // order lays the compressed clusters out in guest order.
    const units: Array<{ at: number; chunk: Uint8Array; packed: Promise<Uint8Array | undefined> | undefined }> = [];
    for (let pos = 0; pos < data.length; pos += unit) {
      const chunk = data.subarray(pos, Math.min(data.length, pos + unit));
      const whole = chunk.length === unit || offset + pos + chunk.length === this.size;
      const packed = whole && inst.compress ? inst.compress(offset + pos, chunk) : undefined;
      // Observed now: a failure is reported in order below, never as an unhandled rejection.
      packed?.catch(() => {});
      units.push({ at: offset + pos, chunk, packed: whole ? (packed ?? NO_PACKED) : undefined });
    }
    const previous = this.compressedTail;
    let done!: () => void;
    this.compressedTail = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      for (const u of units) {
        let stored = false;
        if (u.packed) {
          const packed = await u.packed;
          if (packed !== undefined || !inst.compress) {
            stored = await this.exclusive(() => inst.writeCompressed!(u.at, u.chunk, packed));
          }
        }
        if (!stored) await this.write(u.at, u.chunk);
      }
    } finally {
      done();
    }
  }

  /**
   * Changes the virtual size (`qemu-img resize`). The format may round `newSize` up to its
   * unit; `size` reports the result. Throws `ERR_UNSUPPORTED_FEATURE` when the format cannot.
   *
   * A grown range reads as zeros even where the backing image is longer than the old size (as
   * with qemu): the range was not part of this disk, so it must not show the backing file's data
   * (or what it held before a shrink). The engine zeroes it after the format grows — zero
   * clusters where the format has them, written zeros otherwise — so a crash between the two
   * leaves an image that opens and checks clean but may read backing data there. Without a
   * backing image (or with a shorter one) the range reads as the format defines, as with qemu.
   * Run it with no other I/O on the device: a write into the new range before the zeroing ends
   * may be zeroed.
   */
  async resize(newSize: number): Promise<void> {
    this.checkWritable("resize");
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
    if (!Number.isSafeInteger(newSize) || newSize < 0) throw new RangeError(`Invalid image size ${newSize}`);
    if (!this.instance.resize) {
      throw new UnsupportedFeatureError(`This image format (${this.format}) does not support resizing`, {
        format: this.format,
      });
    }
    await this.ensureWriting();
    const oldSize = this.size;
    await this.exclusive(() => this.instance.resize!(newSize));
    // Past the backing image's end reads are zeros already (see readBacking).
    const exposedEnd = Math.min(this.size, this.backing?.size ?? 0);
    if (exposedEnd > oldSize) await this.writeZeroes(oldSize, exposedEnd - oldSize);
  }

  /**
   * Changes the backing file recorded in the image (`qemu-img rebase`'s last step; `undefined`
   * removes it). This device keeps reading through the backing device it was opened with:
   * reopen the image to read through the new one. Throws `ERR_UNSUPPORTED_FEATURE` when the
   * format cannot record a new backing file.
   */
  async setBacking(ref: BackingReference | undefined): Promise<void> {
    this.checkWritable("change the backing file");
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
    const caps = this.capabilities;
    if (!caps.backing && !(caps.flatten && ref === undefined)) {
      const why = caps.flatten
        ? `${this.format} images can only be flattened (a safe rebase with -b "")`
        : `This image format (${this.format}) cannot change its backing file`;
      throw new UnsupportedFeatureError(why, { format: this.format });
    }
    await this.ensureWriting();
    await this.exclusive(() => this.instance.setBacking!(ref));
  }

  /**
   * Applies `qemu-img amend` options. Throws `ERR_UNSUPPORTED_FEATURE` ("Format driver 'X' does
   * not support option amendment") when the format has none, and the format's own errors for
   * bad options before changing anything. Run it with no other I/O on the image.
   */
  async amend(options: ReadonlyArray<readonly [string, string]>, callOptions: AmendCallOptions = {}): Promise<void> {
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
    if (!this.instance.amend) {
      throw new UnsupportedFeatureError(`Format driver '${this.format}' does not support option amendment`, {
        format: this.format,
        file: this.name,
      });
    }
    this.checkWritable("amend");
    throwIfAborted(callOptions.signal);
    await this.ensureWriting();
    await this.instance.amend(options, {
      name: this.name,
      flush: () => this.flush(),
      resize: (n) => this.resize(n),
    });
  }

  /**
   * Copies into this image what `[start, start+length)` reads through to its backing image, in
   * whole allocation units (clipped to the ranges that read through). With `compareWith`, only
   * units whose backing data differs from what `compareWith` holds there (zeros past its end;
   * `null`: zeros everywhere) are copied — a safe rebase. Zero runs become `writeZeroes`.
   * This is the one loop behind copy-on-read, rebase and flatten. Returns the bytes written.
   * Checks `signal` between requests and stops there (what was copied stays valid).
   */
  async copyFromBacking(start: number, length: number, options: CopyFromBackingOptions = {}): Promise<number> {
    this.checkWritable("copy backing data");
    this.checkRange(start, length, "copy backing data");
    return this.copyBackingRuns(start, start + length, options, async (pos, data, zero) => {
      if (zero && this.backing) await this.writeZeroes(pos, data.length);
      else await this.write(pos, data);
    });
  }

  /** The loop of {@link copyFromBacking}; `put` writes one run of differing units. */
  private async copyBackingRuns(
    start: number,
    end: number,
    options: CopyFromBackingOptions,
    put: (pos: number, data: Uint8Array, zero: boolean) => Promise<void>,
  ): Promise<number> {
    const unit = Math.max(1, this.instance.allocationUnit);
    const chunk = Math.max(unit, Math.floor((options.chunkSize ?? ZERO_CHUNK) / unit) * unit);
    const compare = options.compareWith;
    const total = end - start;
    let written = 0;
    const report = progressReporter(total, options.onProgress);
    report(0);
    let pos = start;
    while (pos < end) {
      throwIfAborted(options.signal);
      const m = await this.mapping(pos, end - pos);
      if (m.kind === "eof") break;
      const runEnd = Math.min(end, pos + m.length);
      if (m.kind === "backing") {
        for (let s = pos; s < runEnd; ) {
          throwIfAborted(options.signal);
          const n = Math.min(chunk, runEnd - s);
          const data = new Uint8Array(n);
          await this.readBacking(s, data);
          let other: Uint8Array | undefined;
          if (compare !== undefined) {
            other = new Uint8Array(n);
            if (compare) await readOrZeros(compare, s, other);
          }
          // Units (clipped to the run) that need copying, in runs of the same kind — zeros or
          // data — each written as one request.
          let runStart = -1;
          let runZero = false;
          for (let g = s; g < s + n; ) {
            const gEnd = Math.min(s + n, (Math.floor(g / unit) + 1) * unit);
            const from = g - s;
            const to = gEnd - s;
            const needed = !other || firstDifference(data.subarray(from, to), other.subarray(from, to), to - from) < to - from;
            const zero = needed && this.kernel.findNonZero(data, from, to) === to;
            if (runStart >= 0 && (!needed || zero !== runZero)) {
              await put(runStart, data.subarray(runStart - s, from), runZero);
              written += from - (runStart - s);
              runStart = -1;
            }
            if (needed && runStart < 0) {
              runStart = g;
              runZero = zero;
            }
            g = gEnd;
          }
          if (runStart >= 0) {
            await put(runStart, data.subarray(runStart - s, n), runZero);
            written += n - (runStart - s);
          }
          s += n;
          report(s - start);
        }
      }
      pos = runEnd;
      report(pos - start);
    }
    report(total);
    return written;
  }

  /**
   * Empties the image so that every range reads through to the backing image (`qemu-img
   * commit` after committing). Throws `ERR_UNSUPPORTED_FEATURE` where `capabilities.makeEmpty`
   * is false.
   */
  async makeEmpty(): Promise<void> {
    this.checkWritable("empty the image");
    if (this.closed) throw new ImageError("ERR_CLOSED", `${this.name} is closed`);
    if (!this.instance.makeEmpty) {
      throw new UnsupportedFeatureError(`This image format (${this.format}) cannot be emptied`, { format: this.format });
    }
    await this.ensureWriting();
    await this.exclusive(() => this.instance.makeEmpty!());
  }

  /**
   * Runs `fn` under the allocation lock once no allocation is in flight, so metadata operations
   * (zeroing, discard, flush, check, close…) never interleave with a half-done allocating write.
   */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      if (this.inFlight.size > 0) await Promise.all([...this.inFlight].map((f) => f.done));
      const r = await this.allocLock.run(async () => (this.inFlight.size > 0 ? RETRY : { value: await fn() }));
      if (r !== RETRY) return r.value;
    }
  }

  async flush(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      await this.instance.flush();
      // Durable now: the next change starts a new write session.
      this.writeState = "clean";
    });
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkRange(offset, length, "block status");
    return this.status(offset, length, 0);
  }

  private async status(offset: number, length: number, depth: number): Promise<Extent> {
    const m = await this.mapping(offset, length);
    const len = m.kind === "eof" ? length : Math.min(m.length, length);
    switch (m.kind) {
      case "data":
        return {
          offset, length: len, depth, present: true, zero: false, data: true,
          fileOffset: m.fileOffset, file: m.file.name,
        };
      case "special":
        return { offset, length: len, depth, present: true, zero: false, data: true, compressed: true };
      case "zero":
        return { offset, length: len, depth, present: !!m.allocated, zero: true, data: false };
      case "eof":
        return { offset, length: len, depth, present: false, zero: true, data: false };
      case "backing": {
        const b = this.backing;
        if (b && offset < b.size) {
          const inner = b instanceof ImageDevice
            ? await b.status(offset, Math.min(len, b.size - offset), depth + 1)
            : { ...(await b.blockStatus(offset, Math.min(len, b.size - offset))), depth: depth + 1 };
          return { ...inner, offset };
        }
        return { offset, length: len, depth: b ? depth + 1 : depth, present: false, zero: true, data: false };
      }
    }
  }

  async *extents(offset = 0, length = this.size - offset): AsyncIterable<Extent> {
    this.checkRange(offset, length, "extents");
    const end = offset + length;
    let cur: Extent | undefined;
    let pos = offset;
    while (pos < end) {
      const e = await this.status(pos, end - pos, 0);
      if (cur && canMerge(cur, e)) {
        cur.length += e.length;
      } else {
        if (cur) yield cur;
        cur = { ...e };
      }
      pos += e.length;
    }
    if (cur) yield cur;
  }

  async check(repair?: RepairMode): Promise<CheckResult> {
    if (repair) this.checkWritable("repair");
    if (!this.instance.check) {
      throw new UnsupportedFeatureError(`This image format (${this.format}) does not support checks`, {
        format: this.format,
      });
    }
    // A repair is left to the driver, lifecycle marks included: it must see the image as it is
    // (a header the first write would rewrite is one of the things it reports and repairs).
    return this.exclusive(() => this.instance.check!(repair));
  }

  info(): Promise<FormatInfo> {
    return this.instance.info();
  }

  /** The guest bytes of `[start, end)` as a `ReadableStream`; see {@link deviceStream}. */
  stream(options?: DeviceStreamOptions): ReadableStream<Uint8Array> {
    return deviceStream(this, options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.exclusive(() => this.instance.close());
    } finally {
      this.closed = true;
      if (this.backing) await this.backing.close();
    }
  }
}

/** Options of {@link ImageDevice.copyFromBacking}. */
export interface CopyFromBackingOptions {
  /**
   * Copy only units whose backing data differs from this device's (zeros past its end);
   * `null` compares with zeros. Absent: copy everything that reads through.
   */
  compareWith?: BlockDevice | null;
  /** Bytes read per request. Default 1 MiB (whole allocation units). */
  chunkSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number }) => void;
}

/** Fills `into` with what `dev` holds at `offset`, zeros past its end. */
async function readOrZeros(dev: BlockDevice, offset: number, into: Uint8Array): Promise<void> {
  const n = Math.max(0, Math.min(into.length, dev.size - offset));
  if (n > 0) await dev.readInto(offset, into.subarray(0, n));
  into.fill(0, n);
}


function canMerge(a: Extent, b: Extent): boolean {
  if (a.depth !== b.depth || a.present !== b.present || a.zero !== b.zero || a.data !== b.data) return false;
  if (!!a.compressed !== !!b.compressed || a.file !== b.file) return false;
  if (a.fileOffset === undefined || b.fileOffset === undefined) return a.fileOffset === b.fileOffset;
  return a.fileOffset + a.length === b.fileOffset;
}

/** An allocation whose data write runs outside the allocation lock. */
interface InFlightAllocation {
  /** Guest range it covers (allocation-unit aligned). */
  readonly start: number;
  readonly end: number;
  /** Settles when the allocation is committed or abandoned. */
  readonly done: Promise<void>;
  readonly finish: () => void;
}

/** What `prepareAllocation` decided. */
type PreparedAllocation =
  | { kind: "done"; consumed: number }
  | { kind: "wait"; until: Promise<void> }
  | { kind: "alloc"; consumed: number; alloc: Allocation; buf: Uint8Array; entry?: InFlightAllocation };

const RETRY = Symbol("retry");

/** A unit to store compressed by a driver that compresses inside `writeCompressed` itself. */
const NO_PACKED: Promise<Uint8Array | undefined> = Promise.resolve(undefined);
