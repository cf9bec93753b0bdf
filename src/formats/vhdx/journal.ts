/**
 * The write protocol of an open VHDX file:
 * - before the first change of a session, both headers get a new FileWriteGuid (and before
 *   the first change a guest can see, a new DataWriteGuid), as the specification requires;
 * - metadata changes (BAT pages, sector bitmap pages) go through the log: flush the data they
 *   point at, write the entry, flush, write the sectors in place, flush;
 * - the log GUID stays in the headers while entries may be pending and is cleared (marking the
 *   log empty) on flush and close.
 * A crash at any point leaves either the old metadata, or a log whose newest entry replays to
 * the new metadata.
 * @module
 */
import { Mutex } from "../../core/mutex.js";
import { UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import type { Kernel } from "../../kernel/kernel.js";
import type { VhdxMetadataSector } from "./bat.js";
import { VHDX_ZERO_GUID, randomVhdxGuid } from "./guid.js";
import type { VhdxHeaderChange, VhdxHeaders } from "./headers.js";
import { applyVhdxLog, type VhdxLogReplay } from "./log-replay.js";
import type { VhdxLogWriter } from "./log-writer.js";

/** Serialises header updates and metadata commits of one open image. */
export class VhdxJournal {
  private fileSession = false;
  private dataSession = false;
  private activeLog: string | undefined;
  private readonly lock = new Mutex();

  constructor(
    private readonly file: IoBackend,
    private readonly kernel: Kernel,
    private readonly headers: VhdxHeaders,
    /** Absent when the image has no log region (its metadata cannot be changed). */
    private readonly writer: VhdxLogWriter | undefined,
  ) {}

  /** True when the image has a log region, so metadata can be changed. */
  get canLog(): boolean {
    return this.writer !== undefined;
  }

  /** True while the headers name a log that may hold entries. */
  get logActive(): boolean {
    return this.activeLog !== undefined;
  }

  private sessionChange(data: boolean): VhdxHeaderChange {
    const change: VhdxHeaderChange = {};
    if (!this.fileSession) change.fileWriteGuid = randomVhdxGuid();
    if (data && !this.dataSession) change.dataWriteGuid = randomVhdxGuid();
    return change;
  }

  private async begin(data: boolean): Promise<void> {
    const change = this.sessionChange(data);
    if (!change.fileWriteGuid && !change.dataWriteGuid) return;
    await this.headers.updateBoth(this.file, this.kernel, change);
    this.fileSession = true;
    if (data) this.dataSession = true;
  }

  /** Runs before the first change that guests cannot see (repairs): new FileWriteGuid. */
  beginFileWrite(): Promise<void> {
    if (this.fileSession) return Promise.resolve();
    return this.lock.run(() => this.begin(false));
  }

  /** Runs before the first write of guest data: new FileWriteGuid and DataWriteGuid. */
  beginDataWrite(): Promise<void> {
    if (this.fileSession && this.dataSession) return Promise.resolve();
    return this.lock.run(() => this.begin(true));
  }

  /**
   * Replays a dirty log into the file (read-write open, `check -r all`): new FileWriteGuid,
   * the writes, flush, then an empty log.
   */
  replay(replay: VhdxLogReplay): Promise<void> {
    return this.lock.run(async () => {
      await this.begin(false);
      await applyVhdxLog(this.file, replay);
      await this.headers.updateBoth(this.file, this.kernel, { logGuid: VHDX_ZERO_GUID });
    });
  }

  /**
   * Makes `sectors` the new on-disk metadata through the log. `fileSize` is the file length
   * to record in the entries (the file is at least that long once the data is flushed).
   */
  commit(sectors: readonly VhdxMetadataSector[], fileSize: number): Promise<void> {
    return this.lock.run(async () => {
      const writer = this.writer;
      if (!writer) {
        throw new UnsupportedFeatureError("Cannot update vhdx metadata: the image has no log region", { format: "vhdx" });
      }
      if (sectors.length === 0) return;
      const change = this.sessionChange(true);
      if (!this.activeLog) change.logGuid = randomVhdxGuid();
      if (change.fileWriteGuid || change.dataWriteGuid || change.logGuid) {
        // Data written so far must be durable before headers name a log that points at it.
        await this.file.flush();
        await this.headers.updateBoth(this.file, this.kernel, change);
        this.fileSession = this.dataSession = true;
        if (change.logGuid) {
          this.activeLog = change.logGuid;
          writer.reset(change.logGuid);
        }
      } else {
        await this.file.flush();
      }
      const max = writer.maxSectorsPerEntry;
      for (let i = 0; i < sectors.length; i += max) {
        const part = sectors.slice(i, i + max);
        await writer.write(this.file, part, fileSize, fileSize);
        await this.file.flush();
        for (const s of part) await this.file.write(s.fileOffset, s.data);
        await this.file.flush();
      }
    });
  }

  /** Marks the log empty (clears the log GUID) if it is active. */
  closeLog(): Promise<void> {
    if (!this.activeLog) return Promise.resolve();
    return this.lock.run(async () => {
      if (!this.activeLog) return;
      await this.headers.updateBoth(this.file, this.kernel, { logGuid: VHDX_ZERO_GUID });
      this.activeLog = undefined;
    });
  }

  /** Rewrites both headers from the current one (repairs an invalid copy). */
  rewriteHeaders(): Promise<void> {
    return this.lock.run(async () => {
      await this.headers.updateBoth(this.file, this.kernel, this.sessionChange(false));
      this.fileSession = true;
    });
  }
}
