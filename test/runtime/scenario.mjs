// The runtime scenario: the same code runs in Node, Deno and Chromium against whatever `vdisk`
// resolves to there, and returns a plain JSON report that the tests compare with what qemu-img
// said about the fixtures (test/fixtures/runtime-expected.json). Plain JS on purpose: Node 20
// runs it without a TypeScript loader. Uses only what all three runtimes share (crypto.subtle,
// AbortController, performance.now).

/** The fixtures, in the order the scenario reads them. overlay.qcow2 has pattern.raw as backing file. */
export const FIXTURES = ["pattern.raw", "pattern.qcow2", "overlay.qcow2"];

/** Lowercase hex of `bytes`. */
export function toHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** SHA-256 of `bytes` as hex, with WebCrypto (Node ≥ 20, Deno, secure browser pages). */
export async function sha256Hex(bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/**
 * The comparable part of an allocation map (`qemu-img map --output=json` or `extents()`):
 * a data extent's `zero` is dropped (qemu-img derives it from holes of the host file, which a
 * git checkout does not keep), then neighbours with the same flags and contiguous host offsets
 * are merged, as qemu-img does.
 */
export function normalizeMap(extents) {
  const out = [];
  for (const e of extents) {
    const cur = {
      offset: e.offset,
      length: e.length,
      depth: e.depth,
      present: !!e.present,
      data: !!e.data,
      zero: e.data ? false : !!e.zero,
    };
    if (e.data && typeof e.fileOffset === "number") cur.fileOffset = e.fileOffset;
    const last = out[out.length - 1];
    if (
      last &&
      last.offset + last.length === cur.offset &&
      last.depth === cur.depth &&
      last.present === cur.present &&
      last.data === cur.data &&
      last.zero === cur.zero &&
      (last.fileOffset === undefined
        ? cur.fileOffset === undefined
        : cur.fileOffset === last.fileOffset + last.length)
    ) {
      last.length += cur.length;
    } else {
      out.push(cur);
    }
  }
  return out;
}

async function collect(iterable) {
  const all = [];
  for await (const x of iterable) all.push(x);
  return all;
}

/** Which `vdisk` entry was loaded, told by the backends it exports. */
export function entryOf(vdisk) {
  if ("DenoFileBackend" in vdisk) return "deno";
  if ("NodeFileBackend" in vdisk) return "node";
  if ("BlobBackend" in vdisk) return "browser";
  return "neutral";
}

/** Format, size, whole-disk hash, sample bytes and normalized map of an open image. */
export async function describeImage(img, samples) {
  const whole = await img.read(0, img.size);
  return {
    format: img.format,
    size: img.size,
    sha256: await sha256Hex(whole),
    samples: await Promise.all(samples.map(async (s) => toHex(await img.read(s.offset, s.length)))),
    map: normalizeMap(await collect(img.extents())),
  };
}

/**
 * Opens every fixture read-only with `open(name)` (which must allow the overlay's backing file)
 * and describes it. A fixture whose format this build has no driver for is reported as skipped,
 * not failed.
 */
export async function readScenario(vdisk, open, expected) {
  const drivers = vdisk.builtinDrivers.map((d) => d.name);
  // Which kernel this runtime ends up with: "wasm" unless the embedded module failed to load.
  const kernel = typeof vdisk.loadKernel === "function" ? (await vdisk.loadKernel()).kind : undefined;
  const images = {};
  for (const name of FIXTURES) {
    const format = expected.images[name].format;
    if (!drivers.includes(format)) {
      images[name] = { skipped: `this build has no ${format} driver` };
      continue;
    }
    const img = await open(name);
    try {
      images[name] = await describeImage(img, expected.samples);
    } finally {
      await img.close();
    }
  }
  return { entry: entryOf(vdisk), drivers, kernel, images };
}

/** qcow2 when this build has it, else raw: the format the write scenario creates. */
export function writeFormatOf(vdisk) {
  return vdisk.builtinDrivers.some((d) => d.name === "qcow2") ? "qcow2" : "raw";
}

/**
 * Creates an image with `create(format, size)`, copies the raw fixture's disk into it in
 * unaligned pieces (through `open("pattern.raw")`), closes it, reopens it with `reopen()` and
 * describes it. The caller checks the hash against qemu's and may hand the file to qemu-img.
 */
export async function writeScenario(vdisk, open, create, reopen, expected) {
  const format = writeFormatOf(vdisk);
  const src = await open("pattern.raw");
  let disk;
  try {
    disk = await src.read(0, src.size);
  } finally {
    await src.close();
  }
  const dst = await create(format, disk.length);
  const cuts = [0, 100003, 131072, 655361, disk.length];
  // Written out of order and concurrently: the engine must serialise allocations itself.
  await Promise.all(
    [3, 1, 0, 2].map((i) => dst.write(cuts[i], disk.subarray(cuts[i], cuts[i + 1]))),
  );
  await dst.flush();
  await dst.close();
  const img = await reopen(format);
  try {
    return { format, ...(await describeImage(img, expected.samples)) };
  } finally {
    await img.close();
  }
}

/** The target of the convert scenario: VHDX with 1 MiB blocks (small files for the page to hand back). */
export const CONVERT_TARGET = { format: "vhdx", options: "block_size=1M" };

/** The share of the source's bytes after which the abort run calls `abort()`. */
export const ABORT_AT = 0.5;

/**
 * One `convertImage` of `open()`'s image into `create(size)`'s, reporting every progress call.
 * With `abortAt` (a fraction of the total) an AbortController is aborted from the progress
 * callback once that much is done; the report then says how convertImage failed and how long
 * after `abort()` it rejected. Both devices are closed before it returns.
 */
async function convertRun(vdisk, open, create, abortAt) {
  const source = await open();
  const target = await create(source.size);
  const controller = new AbortController();
  const progress = [];
  let abortedAt;
  const run = { progress };
  try {
    run.stats = await vdisk.convertImage(source, target, {
      signal: controller.signal,
      onProgress: (p) => {
        progress.push({ done: p.done, total: p.total });
        if (abortAt !== undefined && abortedAt === undefined && p.done >= abortAt * p.total) {
          abortedAt = performance.now();
          controller.abort();
        }
      },
    });
  } catch (e) {
    run.error = { name: e?.name, message: String(e?.message), isSignalReason: e === controller.signal.reason };
    if (abortedAt !== undefined) run.rejectedAfterMs = Math.round(performance.now() - abortedAt);
  } finally {
    await target.close();
    await source.close();
  }
  run.aborted = abortedAt !== undefined;
  return run;
}

/** What the partly or wholly converted target is once reopened: format, size, vdisk's check. */
async function reopenReport(reopen) {
  const img = await reopen();
  try {
    const check = await img.check();
    const { corruptions, leaks, checkErrors, messages } = check;
    return { format: img.format, size: img.size, check: { corruptions, leaks, checkErrors, messages } };
  } finally {
    await img.close();
  }
}

/**
 * The convert scenario: `open()` gives the source (a qcow2 made by qemu-img), `create(name,
 * size)` a new target image named `name` ("full" or "aborted") in {@link CONVERT_TARGET}'s
 * format, `reopen(name)` that target again. Converts once to the end and once aborted at
 * {@link ABORT_AT}, reopening and checking each result; the caller hands both to qemu-img.
 */
export async function convertScenario(vdisk, open, create, reopen) {
  const full = await convertRun(vdisk, open, (size) => create("full", size));
  full.reopened = await reopenReport(() => reopen("full"));
  const aborted = await convertRun(vdisk, open, (size) => create("aborted", size), ABORT_AT);
  aborted.reopened = await reopenReport(() => reopen("aborted"));
  return { entry: entryOf(vdisk), full, aborted };
}
