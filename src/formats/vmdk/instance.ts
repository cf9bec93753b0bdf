/**
 * An open VMDK: its extents laid end to end in the guest address space, the descriptor (CID,
 * parent CID, parent name), and the CID change on the first write of each open, as VMware and
 * QEMU do, so children made from this disk notice that it changed.
 * @module
 */
import type { BackingReference, CheckResult, FormatInfo, FormatInstance, RepairMode } from "../../core/format.js";
import type { Allocation, Mapping, SpecialMapping } from "../../core/mapping.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { checkVmdk } from "./check.js";
import { encodeVmdkDescriptor, randomVmdkCid, replaceVmdkCid } from "./descriptor.js";
import type { VmdkDescriptorPlace } from "./descriptor-read.js";
import type { VmdkExtent } from "./extent.js";
import { vmdkInfo } from "./info.js";

/** Everything the opener found. */
export interface VmdkState {
  /** The file the image was opened from (descriptor or monolithic sparse file). */
  readonly file: IoBackend;
  readonly readOnly: boolean;
  readonly extents: readonly VmdkExtent[];
  /** Files opened for extents (closed with the image); the top file is not among them. */
  readonly extentFiles: readonly IoBackend[];
  readonly createType: string;
  /** The descriptor's text and place, when there is one. */
  readonly descriptor?: { text: string; place: VmdkDescriptorPlace };
  cid?: number;
  readonly parentCid?: number;
  readonly backing?: BackingReference;
}

interface SpecialToken {
  readonly extent: VmdkExtent;
  readonly start: number;
  readonly inner: unknown;
}

/** The grain size writes are widened to, or why sparse writes are impossible. */
function allocationLayout(extents: readonly VmdkExtent[]): { unit: number; blocker?: string } {
  let unit = 0;
  let start = 0;
  let total = 0;
  for (const e of extents) total += e.size;
  for (const e of extents) {
    if (e.grainSize !== undefined) {
      if (unit === 0) unit = e.grainSize;
      if (e.grainSize !== unit) return { unit, blocker: "its sparse extents use different grain sizes" };
      const end = start + e.size;
      if (start % unit !== 0 || (end % unit !== 0 && end !== total)) {
        return { unit, blocker: "a sparse extent does not start and end on a grain boundary" };
      }
    }
    start += e.size;
  }
  return { unit: unit || 512 };
}

/** One open VMDK image. */
export class VmdkInstance implements FormatInstance {
  readonly format = "vmdk";
  readonly size: number;
  readonly allocationUnit: number;
  readonly backing?: BackingReference;
  private readonly starts: number[] = [];
  private readonly blocker?: string;
  private cidChange?: Promise<void>;

  constructor(readonly state: VmdkState) {
    let pos = 0;
    for (const e of state.extents) {
      this.starts.push(pos);
      pos += e.size;
    }
    this.size = pos;
    const layout = allocationLayout(state.extents);
    this.allocationUnit = layout.unit;
    this.blocker = layout.blocker;
    this.backing = state.backing;
  }

  /** Index of the extent holding guest byte `offset` (which is < size). */
  private find(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The extent at `offset`, the offset inside it and the bytes left in it from there. */
  private locate(offset: number, length: number): { extent: VmdkExtent; start: number; rel: number; len: number } {
    const i = this.find(offset);
    const extent = this.state.extents[i];
    const start = this.starts[i];
    const rel = offset - start;
    return { extent, start, rel, len: Math.min(length, extent.size - rel) };
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const { extent, start, rel, len } = this.locate(offset, length);
    const m = await extent.getMapping(rel, len);
    if (m.kind !== "special") return m;
    const token: SpecialToken = { extent, start, inner: m.token };
    return { ...m, token };
  }

  async readSpecial(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void> {
    const t = mapping.token as SpecialToken;
    const g = t.extent.grainSize!;
    await t.extent.readSpecial!(t.inner, (offset - t.start) % g, into);
  }

  /** Refuses allocation the image cannot take (the engine refuses read-only opens). */
  private requireWritable(): void {
    if (this.blocker) {
      throw new UnsupportedFeatureError(`Cannot allocate in vmdk image '${this.state.file.name}': ${this.blocker}`, {
        format: "vmdk",
      });
    }
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    this.requireWritable();
    const { extent, rel, len } = this.locate(offset, length);
    if (!extent.allocate) {
      throw new UnsupportedFeatureError(
        `Cannot write to vmdk image '${this.state.file.name}' at ${offset}: ${extent.info().type || "this"} extents cannot be written`,
        { format: "vmdk" },
      );
    }
    return extent.allocate(rel, len);
  }

  async zeroRange(offset: number, length: number): Promise<number> {
    if (this.blocker) return 0;
    const { extent, rel, len } = this.locate(offset, length);
    return extent.zeroRange ? extent.zeroRange(rel, len) : 0;
  }

  async writeCompressed(offset: number, data: Uint8Array): Promise<boolean> {
    this.requireWritable();
    const { extent, rel, len } = this.locate(offset, data.length);
    if (len < data.length || !extent.writeCompressed) return false;
    return extent.writeCompressed(rel, data);
  }

  /**
   * Gives the image a new CID before its first change in this open (once per open, as QEMU:
   * flushes do not renew it; later calls wait for the first). The descriptor is rewritten in
   * place with only the CID changed.
   */
  beginWrites(): Promise<void> {
    return this.changeCid();
  }

  private changeCid(): Promise<void> {
    this.cidChange ??= this.writeNewCid();
    return this.cidChange;
  }

  private async writeNewCid(): Promise<void> {
    const d = this.state.descriptor;
    if (!d || this.state.readOnly) return;
    let cid = randomVmdkCid();
    while (cid === this.state.cid) cid = randomVmdkCid();
    const text = replaceVmdkCid(d.text, cid);
    const bytes = encodeVmdkDescriptor(text);
    const file = this.state.file;
    if (d.place.kind === "embedded") {
      if (bytes.length >= d.place.capacity) return; // no room for the longer text: keep the old CID
      // Zeros after the text clear what a longer old text left behind.
      const region = new Uint8Array(Math.min(d.place.capacity, Math.max(bytes.length, d.text.length) + 1));
      region.set(bytes);
      await file.write(d.place.offset, region);
    } else {
      await file.write(0, bytes);
      if (bytes.length < d.text.length) await file.truncate(bytes.length);
    }
    d.text = text;
    this.state.cid = cid;
  }

  async flush(): Promise<void> {
    if (this.state.readOnly) return;
    for (const e of this.state.extents) await e.flush();
    await this.state.file.flush();
  }

  /**
   * QEMU's check. `-r all` (which qemu-img cannot do for vmdk) first clears the grain tables and
   * GTEs that point past the end of their file, as a crash with a volatile disk cache leaves
   * them (the entry reached the disk, the grain did not); those grains read from the backing
   * file or as zeros again. `-r leaks` has nothing to do (vmdk keeps no allocation counts).
   */
  async check(repair?: RepairMode): Promise<CheckResult> {
    if (repair && this.state.readOnly) {
      throw new ImageError("ERR_READ_ONLY", "Cannot repair vmdk image: it is open read-only", { format: "vmdk" });
    }
    const fixes: string[] = [];
    if (repair === "all") {
      for (const e of this.state.extents) if (e.repair) fixes.push(...(await e.repair(() => this.changeCid())));
    }
    const r = await checkVmdk(this.state.extents, this.starts);
    r.corruptionsFixed = fixes.length;
    r.messages = [...fixes, ...r.messages];
    return r;
  }

  async info(): Promise<FormatInfo> {
    return vmdkInfo(this.state);
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      for (const f of this.state.extentFiles) await f.close().catch(() => {});
      await this.state.file.close();
    }
  }
}
