/**
 * Opening and creating images on any {@link IoBackend}: probing, backing chains under an
 * {@link OpenPolicy}, and the first-sector guard of probed raw images.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { CreateOptionValues, FormatDriver, ProbeInput } from "../core/format.js";
import { ImageDevice } from "../core/image-device.js";
import { parseCreateOptions, splitOptionString } from "../core/options.js";
import { MAX_BACKING_CHAIN_DEPTH } from "../core/limits.js";
import { policedRequest, type OpenPolicy } from "../core/policy.js";
import { ImageError, LimitExceededError, isImageError } from "../errors.js";
import type { FileOpener, IoBackend, OpenFileRequest } from "../io/backend.js";
import { readZeroPadded } from "../io/helpers.js";
import { loadKernel } from "../kernel/index.js";
import type { Kernel } from "../kernel/kernel.js";
import { builtinDrivers, findDriver } from "../formats/registry.js";

/** Options of `openImage`. */
export interface OpenImageOptions {
  /** Format name; probed when absent. */
  format?: string;
  /** Open without write access. Default false (read-write) where the source allows it. */
  readOnly?: boolean;
  /** Which files named by the image may be opened. Library default `deny`. */
  backing?: OpenPolicy;
  /** Open the image without its backing file: unallocated ranges read as zeros. */
  noBacking?: boolean;
  /** Most backing files below the image. Default {@link MAX_BACKING_CHAIN_DEPTH} (4096). */
  maxChainDepth?: number;
  /** Opens named files; the runtime entries supply one for paths. */
  openFile?: FileOpener;
  /** Driver-specific open options. */
  driverOptions?: Record<string, string>;
  kernel?: Kernel;
  /** Receives warnings (default: dropped). */
  warn?: (message: string) => void;
  /** Extra drivers tried before the built-in ones. */
  drivers?: FormatDriver[];
}

/** Options of `createImage`. */
export interface CreateImageOptions extends Omit<OpenImageOptions, "format" | "readOnly" | "noBacking"> {
  format: string;
  /** Virtual size in bytes; defaults to the backing file's size. */
  size?: number;
  /** Create options: a `-o` string (`cluster_size=64k,compat=1.1`) or an object. */
  options?: string | Record<string, string | number | boolean>;
  /** Backing file name to record (opened to learn its size, through the policy). */
  backingFile?: string;
  /** Backing file format to record; probed when absent. */
  backingFormat?: string;
  /**
   * Record `backingFile` without opening it (`qemu-img create -u`): `size` and `backingFormat`
   * must then be given, and the created image is returned open without its backing chain.
   */
  unsafeBacking?: boolean;
}

const PROBE_HEAD = 65536;

const noOpener: FileOpener = async (req) => {
  throw new ImageError("ERR_OPEN_DENIED", `Cannot open ${req.purpose} file '${req.name}': no file opener in this runtime`, {
    file: req.relativeTo.name,
  });
};

function driversOf(options: { drivers?: FormatDriver[] }): FormatDriver[] {
  return options.drivers ? [...options.drivers, ...builtinDrivers] : builtinDrivers;
}

/** Reads what probing looks at. */
export async function readProbeInput(io: IoBackend): Promise<ProbeInput> {
  const fileSize = await io.size();
  const head = await readZeroPadded(io, 0, Math.min(PROBE_HEAD, fileSize));
  const tailLen = Math.min(512, fileSize);
  const tail = await readZeroPadded(io, fileSize - tailLen, tailLen);
  return { head, tail, fileSize, name: io.name };
}

/** The best-scoring driver for `input`; the fallback driver (raw) when no other matches. */
export function probeFormat(input: ProbeInput, drivers: readonly FormatDriver[] = builtinDrivers): FormatDriver {
  let best: FormatDriver | undefined;
  let bestScore = 0;
  for (const d of drivers) {
    let score = 0;
    try {
      score = d.probe(input);
    } catch {
      score = 0;
    }
    if (score > bestScore) {
      best = d;
      bestScore = score;
    }
  }
  const fallback = best ?? drivers.find((d) => d.fallback);
  if (!fallback) throw new ImageError("ERR_UNKNOWN_FORMAT", `No driver recognises ${input.name} and none is a fallback`);
  return fallback;
}

function requireDriver(name: string, drivers: readonly FormatDriver[]): FormatDriver {
  const d = findDriver(name, drivers);
  if (!d) {
    throw new ImageError("ERR_UNKNOWN_FORMAT", `Unknown format '${name}' (known: ${drivers.map((x) => x.name).join(", ")})`);
  }
  return d;
}

/** The opener that enforces `policy` before delegating. */
function policedOpener(options: OpenImageOptions): FileOpener {
  const policy = options.backing ?? "deny";
  const inner = options.openFile ?? noOpener;
  return (req: OpenFileRequest) => inner(policedRequest(policy, req));
}

/**
 * Opens the image stored in `io` and its backing chain. The returned device owns `io` and
 * closes it. Throws {@link ImageError} for anything wrong with the image.
 */
export async function openImageOn(io: IoBackend, options: OpenImageOptions = {}): Promise<ImageDevice> {
  return openLayer(io, options, 0, new Set(), io.name);
}

async function openLayer(
  io: IoBackend,
  options: OpenImageOptions,
  depth: number,
  seen: Set<string>,
  topName: string,
): Promise<ImageDevice> {
  const drivers = driversOf(options);
  const kernel = options.kernel ?? (await loadKernel());
  const readOnly = !!options.readOnly || !io.capabilities.writable;
  const warn = options.warn ?? (() => {});
  const opener = policedOpener(options);
  try {
    const explicit = options.format !== undefined;
    const driver = explicit ? requireDriver(options.format!, drivers) : probeFormat(await readProbeInput(io), drivers);
    let guardFirstSector: ((head: Uint8Array) => void) | undefined;
    if (!explicit && driver.fallback && !readOnly) {
      warn(
        `Image format was not specified for '${io.name}' and probing guessed raw; writes to the first sector that would make it look like another format are refused. Specify -f raw to lift this.`,
      );
      guardFirstSector = (head) => {
        const input = { head, tail: new Uint8Array(0), fileSize: Number.MAX_SAFE_INTEGER, name: io.name };
        const other = probeFormat(input, drivers);
        if (!other.fallback) {
          throw new ImageError(
            "ERR_OPEN_DENIED",
            `Refusing a write to the first sector of probed raw image '${io.name}': it would make it look like ${other.name}`,
            { file: io.name },
          );
        }
      };
    }
    const instance = await driver.open({
      file: io,
      readOnly,
      explicitFormat: explicit,
      options: options.driverOptions ?? {},
      openFile: opener,
      kernel,
      warn,
    });
    let backing: BlockDevice | undefined;
    try {
      if (instance.backing && !options.noBacking) {
        const max = options.maxChainDepth ?? MAX_BACKING_CHAIN_DEPTH;
        if (depth + 1 > max) {
          // Name the image the user gave: the layer that hits the limit means nothing to them.
          throw new LimitExceededError(
            `Backing chain of ${topName} is deeper than the limit of ${max} backing files (at ${io.name})`,
            { file: topName },
          );
        }
        const file = await opener({ name: instance.backing.name, relativeTo: io, writable: false, purpose: "backing" });
        if (seen.has(file.name) || file.name === io.name) {
          await file.close();
          throw new ImageError("ERR_CORRUPT_IMAGE", `Backing chain of ${io.name} loops back to ${file.name}`, {
            file: io.name,
          });
        }
        seen.add(io.name);
        backing = await openLayer(
          file,
          { ...options, format: instance.backing.format, readOnly: true, driverOptions: {} },
          depth + 1,
          seen,
          topName,
        );
      }
    } catch (e) {
      await instance.close().catch(() => {});
      throw e;
    }
    return new ImageDevice(instance, { readOnly, kernel, backing, guardFirstSector, name: io.name });
  } catch (e) {
    await io.close().catch(() => {});
    if (isImageError(e) && !e.file) e.file = io.name;
    throw e;
  }
}

/**
 * Creates an image in `io` (which must be empty and writable) and returns it opened
 * read-write. The device owns `io`.
 */
export async function createImageOn(io: IoBackend, options: CreateImageOptions): Promise<ImageDevice> {
  const drivers = driversOf(options);
  const kernel = options.kernel ?? (await loadKernel());
  const warn = options.warn ?? (() => {});
  const driver = requireDriver(options.format, drivers);
  const opener = policedOpener(options);
  try {
    if (!driver.create) {
      throw new ImageError("ERR_UNSUPPORTED_FEATURE", `Format driver '${driver.name}' does not support image creation`);
    }
    const raw: Array<[string, string | number | boolean]> =
      typeof options.options === "string" ? splitOptionString(options.options) : Object.entries(options.options ?? {});
    // qemu-img accepts the backing file as an option too.
    let backingFile = options.backingFile;
    let backingFormat = options.backingFormat;
    const rest = raw.filter(([k, v]) => {
      if (k === "backing_file") backingFile = String(v);
      else if (k === "backing_fmt") backingFormat = String(v);
      else return true;
      return false;
    });
    const values: CreateOptionValues = parseCreateOptions(driver.name, driver.createOptions, rest);
    let size = options.size;
    let backing: { name: string; format?: string; size: number } | undefined;
    if (backingFile) {
      if (!driver.supportsBacking) {
        throw new ImageError("ERR_UNSUPPORTED_FEATURE", `Format ${driver.name} does not support backing files`);
      }
      if (options.unsafeBacking) {
        if (size === undefined) throw new RangeError("Image creation needs a size parameter");
        if (!backingFormat) throw new RangeError("An unsafe backing file needs its format (backingFormat)");
        backing = { name: backingFile, format: backingFormat, size };
      } else {
        const bio = await opener({ name: backingFile, relativeTo: io, writable: false, purpose: "backing" });
        const baseOptions = { ...options, format: backingFormat, readOnly: true };
        const base = await openLayer(bio, baseOptions, 1, new Set([io.name]), io.name);
        backing = { name: backingFile, format: backingFormat ?? base.format, size: base.size };
        await base.close();
        size ??= backing.size;
      }
    }
    if (size === undefined) throw new RangeError("Cannot create an image without a size (give a size or a backing file)");
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`Invalid image size ${size}`);
    await driver.create({ file: io, size, options: values, backing, openFile: opener, kernel, warn });
  } catch (e) {
    await io.close().catch(() => {});
    throw e;
  }
  const topOptions = { ...options, format: driver.name, readOnly: false, noBacking: !!options.unsafeBacking };
  return openLayer(io, topOptions, 0, new Set(), io.name);
}
