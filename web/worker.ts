/**
 * The page's worker: opens the image, describes it (info, map, check) and converts it, so that
 * the page never freezes. Errors go back as sentences; nothing here touches the DOM.
 * @module
 */
import {
  builtinDrivers,
  checkImage,
  convertImage,
  createImage,
  imageInfo,
  isImageError,
  mapImage,
  openImage,
  setZstdEncoder,
  type BlockDevice,
  type FormatDriver,
  MemoryBackend,
} from "../src/browser.js";
import type { MapRun, Reply, Request, WritableFormat } from "./protocol.js";

// The zstd encoder is a chunk of its own, fetched only when a conversion compresses with zstd.
setZstdEncoder(async (level) => (await import("../src/codec/zstd-encoder.js")).loadZstdCompressor(level));

const MAX_RUNS = 50_000;
let device: BlockDevice | undefined;
let deviceName = "image";
let running: AbortController | undefined;

const post = (reply: Reply): void => (self as unknown as Worker).postMessage(reply);

/** One sentence for the page: the error's own message (never a stack). */
function sentence(e: unknown): string {
  if (e instanceof DOMException && e.name === "AbortError") return "Cancelled.";
  const text = e instanceof Error ? e.message : String(e);
  const prefix = isImageError(e) ? "" : "Something went wrong: ";
  return `${prefix}${text}`.replace(/\s+/g, " ").trim();
}

function writableFormats(): WritableFormat[] {
  return builtinDrivers
    .filter((d: FormatDriver) => typeof d.create === "function")
    .map((d) => ({
      name: d.name,
      options: (d.createOptions ?? []).map((o) => ({ name: o.name, description: o.help })),
    }));
}

function kindOf(e: { data: boolean; zero: boolean; depth: number; present: boolean }): MapRun["kind"] {
  if (e.depth > 0 && e.present) return "backing";
  if (e.data) return "data";
  if (e.zero && e.present) return "zero";
  return "unallocated";
}

async function open(req: Extract<Request, { type: "open" }>): Promise<void> {
  await device?.close().catch(() => undefined);
  device = undefined;
  const source = req.file ?? (req.url ? new URL(req.url) : undefined);
  if (!source) throw new TypeError("Choose a file or enter a URL first.");
  deviceName = req.file?.name ?? new URL(req.url!).pathname.split("/").pop() ?? "image";
  device = await openImage(source, { readOnly: true });
  const info = await imageInfo(device, { filename: deviceName });
  const map: MapRun[] = [];
  let truncated = false;
  for await (const e of mapImage(device)) {
    const kind = kindOf(e);
    const last = map[map.length - 1];
    if (last && last.kind === kind && last.start + last.length === e.start) last.length += e.length;
    else if (map.length < MAX_RUNS) map.push({ start: e.start, length: e.length, kind });
    else truncated = true;
  }
  post({ type: "opened", name: deviceName, size: device.size, info, map, mapTruncated: truncated });
  const check = await checkImage(device);
  if (!check.supported) post({ type: "checked", supported: false, corruptions: 0, leaks: 0, messages: [] });
  else post({ type: "checked", supported: true, corruptions: check.result.corruptions, leaks: check.result.leaks, messages: check.messages });
}

async function convert(req: Extract<Request, { type: "convert" }>): Promise<void> {
  if (!device) throw new TypeError("Open an image first.");
  const base = deviceName.replace(/\.[^.]*$/, "") || "image";
  const name = `${base}.${req.format === "vpc" ? "vhd" : req.format}`;
  const controller = new AbortController();
  running = controller;
  let target: BlockDevice | undefined;
  let handle: FileSystemFileHandle | undefined;
  const memory = new MemoryBackend();
  try {
    const opts = { format: req.format, size: device.size, options: req.options.trim() || undefined };
    if (req.keepInOpfs) {
      handle = await (await navigator.storage.getDirectory()).getFileHandle(name, { create: true });
      target = await createImage(handle, opts);
    } else target = await createImage(memory, opts);
    if (req.compress && !target.capabilities.compress) {
      throw new TypeError(`The ${req.format} format cannot store compressed data; untick "compressed" or pick qcow2.`);
    }
    post({ type: "progress", done: 0, total: device.size });
    await convertImage(device, target, {
      compress: req.compress,
      signal: controller.signal,
      onProgress: (p) => post({ type: "progress", done: p.done, total: p.total }),
    });
    await target.close();
    target = undefined;
    // convertToBlob (src/streams) can replace this copy through memory later.
    const blob = handle ? await handle.getFile() : new Blob([memory.bytes().slice()]);
    post({ type: "converted", name, blob, opfs: !!handle });
  } finally {
    running = undefined;
    await target?.close().catch(() => undefined);
  }
}

self.onmessage = async (event: MessageEvent<Request>) => {
  const req = event.data;
  if (req.type === "cancel") {
    running?.abort();
    return;
  }
  try {
    if (req.type === "open") await open(req);
    else if (req.type === "convert") await convert(req);
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") post({ type: "cancelled" });
    else post({ type: "error", message: sentence(e) });
  }
};

post({ type: "formats", formats: writableFormats(), opfs: typeof navigator.storage?.getDirectory === "function" });
