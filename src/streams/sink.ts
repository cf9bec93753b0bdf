/**
 * The destinations a stream can be written to, behind one small interface: a web
 * `WritableStream<Uint8Array>` (every runtime) or anything shaped like a Node `Writable`
 * (duck-typed, so this module imports no `node:*`).
 * @module
 */
import { abortable } from "./abort.js";

/** The part of a Node `Writable` vdisk uses (`fs.WriteStream`, `process.stdout`, sockets, …). */
export interface NodeWritableLike {
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  end(callback?: () => void): unknown;
  destroy(error?: Error): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  removeListener(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** What {@link convertToStream} writes into. */
export type StreamSink = WritableStream<Uint8Array> | NodeWritableLike;

/** One sink as the streaming layer drives it. */
export interface SinkDriver {
  /** Queues `chunk` (kept until written) and resolves when the sink wants more. */
  write(chunk: Uint8Array): Promise<void>;
  /** Resolves once the sink has accepted every byte. */
  close(): Promise<void>;
  /** Ends the sink with an error, so a reader never takes the partial output for a whole image. */
  abort(reason: unknown): Promise<void>;
}

function isWritableStream(s: StreamSink): s is WritableStream<Uint8Array> {
  return typeof (s as WritableStream<Uint8Array>).getWriter === "function";
}

/** Rethrows the first failure the sink reported, if any. */
function throwIfFailed(state: { failure?: { error: unknown } }): void {
  if (state.failure) throw state.failure.error;
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/** A {@link SinkDriver} for `sink`; waits for backpressure unless `signal` aborts first. */
export function driveSink(sink: StreamSink, signal?: AbortSignal): SinkDriver {
  return isWritableStream(sink) ? driveWebSink(sink, signal) : driveNodeSink(sink, signal);
}

function driveWebSink(sink: WritableStream<Uint8Array>, signal?: AbortSignal): SinkDriver {
  const writer = sink.getWriter();
  const state: { failure?: { error: unknown } } = {};
  return {
    async write(chunk) {
      throwIfFailed(state);
      await abortable(writer.ready, signal);
      throwIfFailed(state);
      writer.write(chunk).catch((e: unknown) => {
        state.failure ??= { error: e };
      });
    },
    async close() {
      throwIfFailed(state);
      await abortable(writer.close(), signal);
    },
    async abort(reason) {
      // Not awaited: the stream errors at once, but abort() settles only after a write the
      // sink is stuck in, which may be never.
      writer.abort(reason).catch(() => {});
    },
  };
}

function driveNodeSink(sink: NodeWritableLike, signal?: AbortSignal): SinkDriver {
  const state: { failure?: { error: unknown } } = {};
  const onError = (e: unknown): void => {
    state.failure ??= { error: e };
  };
  // Kept for the sink's lifetime: an 'error' without a listener would crash a Node process.
  sink.on("error", onError);
  /** Resolves on `event`, rejects on error or premature close. */
  const waitFor = (event: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const done = (): void => {
        cleanup();
        resolve();
      };
      const fail = (e: unknown): void => {
        cleanup();
        reject(e);
      };
      const closed = (): void => {
        cleanup();
        if (event === "finish") resolve();
        else reject(state.failure?.error ?? new Error("The output was closed before the image was written"));
      };
      const cleanup = (): void => {
        sink.removeListener(event, done);
        sink.removeListener("error", fail);
        sink.removeListener("close", closed);
      };
      sink.once(event, done);
      sink.once("error", fail);
      sink.once("close", closed);
    });
  return {
    async write(chunk) {
      throwIfFailed(state);
      if (!sink.write(chunk)) await abortable(waitFor("drain"), signal);
      throwIfFailed(state);
    },
    async close() {
      throwIfFailed(state);
      const finished = waitFor("finish");
      sink.end();
      await abortable(finished, signal);
      throwIfFailed(state);
    },
    async abort(reason) {
      sink.destroy(asError(reason));
    },
  };
}
