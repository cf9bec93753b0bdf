/**
 * `vdisk convert … SRC -` and any other non-seekable DST (a FIFO, a pipe behind /dev/stdout, a
 * socket, a character device): the image is written front to back by the format's sequential
 * writer (`convertToStream`). Also the check that refuses pipes as images to open, as qemu-img.
 * @module
 */
import { createWriteStream, statSync } from "node:fs";
import type { FormatDriver } from "../core/format.js";
import { ConcatDevice } from "../filters/concat.js";
import { convertToStream, prepareStreamWriter, type NodeWritableLike } from "../node.js";
import type { CommandContext } from "./context.js";
import { CliError, errorText } from "./errors.js";
import { closingAfter, openCliImage, type CliImage } from "./open-image.js";
import { progressPrinter } from "./progress.js";

/** The DST name that means standard output. */
export const STDOUT_NAME = "-";

/** True when `path` is a file kind that cannot seek: a FIFO, socket or character device. */
function isNonSeekableFile(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFIFO() || st.isSocket() || st.isCharacterDevice();
  } catch {
    return false;
  }
}

/** True when convert must stream into `dstPath` (`-`, or an existing non-seekable file). */
export function isStreamTarget(dstPath: string): boolean {
  return dstPath === STDOUT_NAME || isNonSeekableFile(dstPath);
}

function stdoutClosedEarly(e: NodeJS.ErrnoException): void {
  if (e.code !== "EPIPE") return;
  process.stderr.write("vdisk: -: the reader closed the pipe before the image was complete\n");
  process.exit(1);
}

/** What the convert command has parsed, for a streamed conversion. */
export interface StreamConvertRequest {
  /** Several sources are copied one after another, as by the seekable convert. */
  srcPaths: string[];
  srcFormat?: string;
  dstPath: string;
  outDriver: FormatDriver;
  options: Record<string, string | number | boolean>;
  compress: boolean;
  sparseSize: number;
  progress: boolean;
}

/**
 * Runs a streamed convert. Fails before opening anything when the format cannot be streamed
 * ("Cannot write FMT to a non-seekable output: … (formats that can: …)") or the options do not
 * apply. Progress goes to stderr when the image goes to stdout.
 */
export async function streamConvert(req: StreamConvertRequest, ctx: CommandContext): Promise<number> {
  try {
    prepareStreamWriter(req.outDriver.name, req.options, req.compress);
  } catch (e) {
    throw new CliError(errorText(e), 1, { cause: e });
  }
  const toStdout = req.dstPath === STDOUT_NAME;
  const progressCtx: CommandContext = toStdout ? { ...ctx, out: ctx.err } : ctx;
  const progress = progressPrinter(progressCtx, req.progress);
  const sources: CliImage[] = [];
  try {
    await closingAfter(() => sources.map((s) => s.device), async () => {
      for (const p of req.srcPaths) sources.push(await openCliImage(p, { format: req.srcFormat, readOnly: true }));
      const device = sources.length === 1 ? sources[0]!.device : new ConcatDevice(sources.map((s) => s.device));
      const sink: NodeWritableLike = toStdout ? process.stdout : createWriteStream(req.dstPath);
      // The CLI ends quietly with status 0 when its stdout reader goes away (`vdisk map | head`);
      // here that leaves an incomplete image, so the status must say so. Runs before that handler.
      if (toStdout) process.stdout.prependListener("error", stdoutClosedEarly);
      try {
        await convertToStream(device, sink, {
          format: req.outDriver.name,
          options: req.options,
          compress: req.compress,
          sparseSize: req.sparseSize,
          name: req.dstPath,
          warn: ctx.warn,
          onProgress: progress.update,
        });
      } catch (e) {
        throw new CliError(`${req.dstPath}: ${errorText(e)}`, 1, { cause: e });
      }
    });
  } finally {
    progress.done();
  }
  return 0;
}
