/**
 * The shared reference images of ../shared/corpus (make-reference-images.sh), built once per
 * machine into a cache directory under os.tmpdir() keyed by the script's and the JSON's hash,
 * so that several test files (and reruns) share one ~100 s build. Test files must open the
 * images read-only.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HAVE_JQ, HAVE_QEMU } from "./qemu.js";

/** Where the corpus lives. */
export const CORPUS_DIR = join(import.meta.dirname, "..", "..", "..", "shared", "corpus");
const SCRIPT = join(CORPUS_DIR, "make-reference-images.sh");
const REF = join(CORPUS_DIR, "reference-images.json");

/** True when the script, its JSON and its tools are all there. */
export const REFERENCE_IMAGES_AVAILABLE = HAVE_QEMU && HAVE_JQ && existsSync(SCRIPT) && existsSync(REF);

/** One entry of reference-images.json. */
export interface ReferenceImage {
  name: string;
  format: string;
  files: Array<{ name: string; size: number }>;
  raw_sha256: string;
  virtual_size: number;
  qemu_img_info: Record<string, unknown>;
  qemu_img_check: Record<string, number | boolean | string>;
}

/** The recorded entries. */
export function referenceImages(): ReferenceImage[] {
  return (JSON.parse(readFileSync(REF, "utf8")) as { images: ReferenceImage[] }).images;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Builds the images (or finds them built) and returns the directory holding `images/`.
 * Concurrent callers wait on a lock directory; a crashed build leaves no half-built cache.
 */
export function ensureReferenceImages(): string {
  const key = createHash("sha256").update(readFileSync(SCRIPT)).update(readFileSync(REF)).digest("hex").slice(0, 12);
  const dir = join(tmpdir(), `vdisk-reference-images-${key}`);
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    if (existsSync(join(dir, "reference-images.json"))) return dir;
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another test file is building; a lock older than the deadline was left by a killed run.
      if (Date.now() > deadline || Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 10 * 60_000) {
        rmSync(lock, { recursive: true, force: true });
      }
      sleep(500);
    }
  }
  try {
    if (existsSync(join(dir, "reference-images.json"))) return dir;
    const work = `${dir}.build-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    const r = spawnSync("bash", [SCRIPT, work], { encoding: "utf8", maxBuffer: 16 << 20 });
    if (r.status !== 0) throw new Error(`make-reference-images.sh failed: ${r.stderr}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return dir;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
