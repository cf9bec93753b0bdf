/**
 * A qemu-io session: the open image (if any), the command table, the queue of asynchronous
 * requests (`aio_*`, completed in order, reported when they finish — at latest at `aio_flush`,
 * before the next other command, at `close` or at {@link IoSession.finish}).
 * @module
 */
import type { BlockDevice } from "../../core/block-device.js";
import { IoUsageError } from "./args.js";

/** Where a command's output goes: `out` for stdout lines, `err` for stderr lines. */
export interface IoCommandOutput {
  out(line: string): void;
  err(line: string): void;
}

/** What `open` asks the host for. */
export interface IoOpenRequest {
  readonly path: string;
  readonly readOnly: boolean;
  /** `-o driver=FMT`, else the session's default format (probed when absent). */
  readonly format?: string;
  /**
   * `-o driver=file|host_device|host_cdrom`: the bytes of the file itself (format raw), which
   * must be a regular file, or a character or block device, as that driver requires.
   */
  readonly protocol?: "file" | "host_device" | "host_cdrom";
}

/** Host services of a session. */
export interface IoSessionOptions {
  /** Opens an image for `open`; absent: `open` fails. */
  open?(request: IoOpenRequest): Promise<BlockDevice>;
  /** Closes what `open` (or the caller) gave; default `device.close()`. */
  close?(device: BlockDevice): Promise<void>;
  /** Waits `ms` milliseconds (`sleep`); default a timer. */
  sleep?(ms: number): Promise<void>;
  /** The name messages start with ("qemu-io: Block node is read-only"); default "qemu-io". */
  programName?: string;
  /** Format for `open` without `-o driver=`. */
  defaultFormat?: string;
}

/** One qemu-io command: usage as `help` shows it, argument count limits, and its body. */
export interface IoCommandSpec {
  readonly name: string;
  /** qemu-io's one-letter alias ("r" for read …). */
  readonly altname?: string;
  readonly args: string;
  readonly oneline: string;
  readonly argmin: number;
  /** -1: no limit. */
  readonly argmax: number;
  /** Fails with "no file open" when no image is open. */
  readonly needsFile: boolean;
  /** Refused on a read-only image before it runs, as qemu-io. */
  readonly writes: boolean;
  /** Queues work instead of draining the asynchronous queue first. */
  readonly async?: boolean;
  run(session: IoSession, words: readonly string[]): Promise<boolean>;
}

/** The state commands share; see the module comment. */
export class IoSession {
  device: BlockDevice | undefined;
  /** Set by `quit`: the caller stops running commands. */
  quit = false;
  private queue: Promise<void> = Promise.resolve();
  private asyncOk = true;

  constructor(
    readonly commands: ReadonlyMap<string, IoCommandSpec>,
    readonly output: IoCommandOutput,
    readonly options: IoSessionOptions = {},
    device?: BlockDevice,
  ) {
    this.device = device;
  }

  /** The open image; commands with `needsFile` only run when there is one. */
  get image(): BlockDevice {
    if (!this.device) throw new Error("no file open");
    return this.device;
  }

  /** Queues `work` after earlier asynchronous requests; a false result marks the session failed. */
  enqueue(work: () => Promise<boolean>): void {
    this.queue = this.queue.then(async () => {
      if (!(await work())) this.asyncOk = false;
    });
  }

  /** Waits for every queued request; false when one of them failed since the last drain. */
  async drain(): Promise<boolean> {
    await this.queue;
    const ok = this.asyncOk;
    this.asyncOk = true;
    return ok;
  }

  /** Prints `spec`'s usage line as qemu-io does after a usage mistake. */
  usage(spec: IoCommandSpec): void {
    this.output.out(`${spec.name} ${spec.args} -- ${spec.oneline}`);
  }

  /** Runs one command line; false when it failed (the reason has been printed). */
  async run(line: string): Promise<boolean> {
    const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
    if (words.length === 0) return true;
    const [name, ...rest] = words;
    const spec = this.commands.get(name);
    if (!spec) {
      this.output.err(`command "${name}" not found`);
      return false;
    }
    let ok = true;
    if (!spec.async) ok = await this.drain();
    const n = rest.length;
    if (n < spec.argmin || (spec.argmax !== -1 && n > spec.argmax)) {
      const expected =
        spec.argmax === -1
          ? `at least ${spec.argmin}`
          : spec.argmin === spec.argmax
            ? `${spec.argmin}`
            : `between ${spec.argmin} and ${spec.argmax}`;
      this.output.err(`bad argument count ${n} to ${name}, expected ${expected} arguments`);
      return false;
    }
    if (spec.needsFile && !this.device) {
      this.output.err("no file open, try 'help open'");
      return false;
    }
    if (spec.writes && this.device?.readOnly) {
      this.output.err(`${this.options.programName ?? "qemu-io"}: Block node is read-only`);
      return false;
    }
    try {
      return (await spec.run(this, rest)) && ok;
    } catch (e) {
      if (e instanceof IoUsageError) {
        if (e.toStdout) this.output.out(e.message);
        else this.output.err(e.message);
        if (e.usage) this.usage(spec);
        return false;
      }
      this.output.err(`${name}: ${e instanceof Error ? e.message : String(e)}`);
      return false;
    }
  }

  /** Completes outstanding requests (as qemu-io does at exit); false when one failed. */
  async finish(): Promise<boolean> {
    return this.drain();
  }
}
