/**
 * One open VHD: fixed disks map guest offsets straight onto the file; dynamic and differencing
 * disks go through the {@link VhdBlockMap}.
 * @module
 */
import type { BackingReference, CheckResult, FormatInfo, FormatInstance, RepairMode } from "../../core/format.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import type { IoBackend } from "../../io/backend.js";
import type { VhdBlockMap } from "./block-map.js";
import { checkVhd } from "./check.js";
import type { VhdDynamicState } from "./dynamic-header.js";
import type { VhdSizeCalc } from "./geometry.js";
import { vhdInfo } from "./info.js";
import type { VhdDiskTypeName, VhdFooter } from "./layout.js";
import type { VhdParentName } from "./parent.js";

/** Everything known about an open VHD. */
export interface VhdState {
  readonly file: IoBackend;
  readonly readOnly: boolean;
  /** File size at open. */
  readonly fileSize: number;
  readonly footer: VhdFooter;
  /** True when the footer came from the copy at offset 0. */
  readonly footerFromStart: boolean;
  readonly subformat: VhdDiskTypeName;
  /** Virtual size in bytes. */
  readonly size: number;
  readonly sizeCalc: VhdSizeCalc;
  readonly dynamic?: VhdDynamicState;
  readonly blockMap?: VhdBlockMap;
  /** Differencing: the parent names stored, best first. */
  readonly parentNames: VhdParentName[];
  /** Problems found at open that do not prevent use (reported again by `check`). */
  readonly problems: string[];
}

/** The {@link FormatInstance} of VHD. */
export class VhdInstance implements FormatInstance {
  readonly format = "vpc";
  readonly allocationUnit = 512;
  readonly size: number;
  readonly backing?: BackingReference;
  readonly state: VhdState;

  constructor(state: VhdState, backing?: BackingReference) {
    this.state = state;
    this.size = state.size;
    this.backing = backing;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    const bm = this.state.blockMap;
    if (bm) return bm.getMapping(offset, length);
    if (offset >= this.size) return { kind: "eof", length: 0 };
    return { kind: "data", length: Math.min(length, this.size - offset), file: this.state.file, fileOffset: offset };
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    const bm = this.state.blockMap;
    if (bm) return bm.allocate(offset, length);
    return {
      mapping: { kind: "data", length: Math.min(length, this.size - offset), file: this.state.file, fileOffset: offset },
      commit: async () => {},
    };
  }

  async flush(): Promise<void> {
    if (!this.state.readOnly) await this.state.file.flush();
  }

  check(repair?: RepairMode): Promise<CheckResult> {
    return checkVhd(this.state, repair);
  }

  async info(): Promise<FormatInfo> {
    return vhdInfo(this.state);
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
