/**
 * The {@link SequentialOutput} the writers append to: small pieces (markers, tables,
 * compressed grains) are gathered into chunks of about 1 MiB before they go to the sink, large
 * ones pass through without a copy. Queued bytes stay bounded: one chunk being gathered plus
 * what the sink's own queue holds before it pushes back.
 * @module
 */
import type { SequentialOutput } from "../core/sequential-writer.js";
import { checkAborted } from "./abort.js";
import type { SinkDriver } from "./sink.js";

/** Bytes gathered before a chunk goes to the sink. */
const CHUNK = 1 << 20;

/** A gathering {@link SequentialOutput} over a sink. */
export class GatheringOutput implements SequentialOutput {
  position = 0;
  private buf: Uint8Array | undefined;
  private used = 0;

  constructor(
    private readonly sink: SinkDriver,
    private readonly signal?: AbortSignal,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    checkAborted(this.signal);
    this.position += bytes.length;
    if (bytes.length === 0) return;
    if (this.used === 0 && bytes.length >= CHUNK) return this.sink.write(bytes);
    let from = 0;
    while (from < bytes.length) {
      this.buf ??= new Uint8Array(CHUNK);
      const n = Math.min(CHUNK - this.used, bytes.length - from);
      this.buf.set(bytes.subarray(from, from + n), this.used);
      this.used += n;
      from += n;
      if (this.used === CHUNK) await this.flush();
    }
  }

  /** Sends the gathered bytes, if any. */
  async flush(): Promise<void> {
    if (!this.buf || this.used === 0) return;
    const chunk = this.buf.subarray(0, this.used);
    this.buf = undefined;
    this.used = 0;
    await this.sink.write(chunk);
  }
}
