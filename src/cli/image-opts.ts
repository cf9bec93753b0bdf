/**
 * `--image-opts` and `--object` as far as vdisk needs them: an image named by qemu's option
 * text (`driver=qcow2,file.filename=disk.qcow2`), and `secret` objects, which are checked and
 * then unused (vdisk opens no encrypted image).
 * @module
 */
import { splitOptionString } from "../core/options.js";
import { CliError } from "./errors.js";

/** The file and format an `--image-opts` text names. */
export interface ImageOptsTarget {
  readonly path: string;
  /** The format (`driver=`); probed when absent. */
  readonly format?: string;
}

/**
 * Reads `driver=FMT,file.filename=PATH[,file.driver=file]` (qemu's keys; `,,` escapes a comma).
 * Other keys fail as qemu-img fails on options the format does not take.
 */
export function parseImageOpts(text: string): ImageOptsTarget {
  const noDevice = (): CliError =>
    new CliError(`Could not open '${text}': Cannot find device='${text}' nor node-name='${text}'`);
  // A text that does not start with key=value names a device (node) to qemu: vdisk has none.
  if (!text.split(",")[0].includes("=")) throw noDevice();
  let format: string | undefined;
  let path: string | undefined;
  for (const [key, value] of splitOptionString(text)) {
    if (key === "driver") format = value;
    else if (key === "file.filename") path = value;
    else if (key === "file.driver" && value === "file") continue;
    else {
      const what = format !== undefined ? `Block format '${format}'` : "vdisk";
      throw new CliError(`Could not open '${text}': ${what} does not support the option '${key}'`);
    }
  }
  if (path === undefined) throw noDevice();
  return { path, format };
}

/** Checks `--object` texts: `secret` objects with an id and `data` or `file`, as qemu wants. */
export function checkObjects(texts: readonly string[]): void {
  for (const text of texts) {
    const pairs = splitOptionString(text);
    // The first item without `=` is the type (`secret,id=s0,...`), else `qom-type=`.
    const first = text.split(",")[0];
    const type = first.includes("=") ? pairs.find(([k]) => k === "qom-type")?.[1] : first;
    if (type !== "secret") throw new CliError(`Parameter 'qom-type' does not accept value '${type ?? ""}'`);
    const keys = new Set(pairs.map(([k]) => k));
    if (!keys.has("id")) throw new CliError("Parameter 'id' is missing");
    if (!keys.has("data") && !keys.has("file")) throw new CliError("Either 'file' or 'data' must be provided");
  }
}
