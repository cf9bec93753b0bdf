/**
 * A bounded, structure-aware fuzz run over every format with a structure: valid images made by
 * vdisk get header and table fields mutated (see mutate.ts), and each mutant goes through open,
 * info, check, map, convert and a read of everything (fuzz-child.ts). The run fails on any
 * answer but success or an ImageError (unhandled rejections included), on a mutant that takes
 * longer than the time bound, on a worker whose peak RSS passes 512 MiB, or on a crash.
 *
 * Seeds: a fixed one (the same mutants every run) and a random one, printed; rerun a random
 * run with VDISK_FUZZ_SEED=<seed>. VDISK_FUZZ_COUNT sets the mutants per seed and format.
 * Workers are separate processes so that a hang or a memory blow-up is observed from outside.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const FIXED_SEED = 0x15f0;
const RANDOM_SEED = Number(process.env.VDISK_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const COUNT = Number(process.env.VDISK_FUZZ_COUNT ?? 100);
/** Per-mutant time bound. Generous: the machine is shared and a mutant normally takes ms. */
const MUTANT_TIMEOUT_MS = 20_000;
const RSS_LIMIT = 512 * 1024 * 1024;

/**
 * The formats vdisk only reads start from QEMU's sample images (the corpus the read-only format
 * tests use), when it and bzip2 are present.
 */
const CORPUS = process.env.VDISK_CORPUS ?? join(import.meta.dirname, "..", "..", "..", "shared", "corpus", "qemu-samples");
const SAMPLE_FILES: Record<string, string> = {
  bochs: "empty.bochs.bz2",
  cloop: "simple-pattern.cloop.bz2",
  dmg: "simple-dmg.dmg.bz2",
};
const HAVE_BZIP2 = spawnSync("sh", ["-c", "command -v bzip2"]).status === 0;
const samples: Record<string, string> = {};
for (const [format, file] of Object.entries(SAMPLE_FILES)) {
  if (HAVE_BZIP2 && existsSync(join(CORPUS, file))) samples[format] = join(CORPUS, file);
}
const missing = Object.keys(SAMPLE_FILES).filter((f) => !samples[f]);
if (missing.length) {
  console.warn(`\n*** fuzz: SKIPPING ${missing.join(", ")} — no sample image in ${CORPUS} (or no bzip2) ***\n`);
}

/** Two workers (two cores), balanced by measured cost (gow2's 16 MiB map is the slowest). */
const GROUPS = [
  ["gow2", "qcow", "qed", "vpc", "parallels", ...Object.keys(samples)],
  ["qcow2", "vhdx", "vmdk", "vdi", "gow1", "fvd"],
];

interface Event {
  start?: boolean;
  end?: boolean;
  bad?: boolean;
  finished?: boolean;
  format?: string;
  index?: number;
  seed?: number;
  op?: string;
  error?: string;
  mutation?: string[];
  opened?: boolean;
  rss?: number;
  peakRss?: number;
}

interface WorkerResult {
  failures: string[];
  mutants: Map<string, number>;
  opened: number;
}

const here = import.meta.dirname;

function runWorker(formats: string[]): Promise<WorkerResult> {
  const job = JSON.stringify({ formats, seeds: [FIXED_SEED, RANDOM_SEED], count: COUNT, samples });
  const child = spawn(
    process.execPath,
    ["--max-old-space-size=512", "--import", join(here, "register-ts.mjs"), join(here, "fuzz-child.ts"), job],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const failures: string[] = [];
  const mutants = new Map<string, number>();
  let opened = 0;
  let last: Event | undefined;
  let finished = false;
  let overLimit = false;
  let stderr = "";
  let timer: NodeJS.Timeout | undefined;
  const where = (e: Event | undefined) =>
    e ? `${e.format} seed ${e.seed} mutant ${e.index} [${(e.mutation ?? []).join("; ")}]` : "before the first mutant";
  const arm = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      failures.push(`hang: no answer within ${ms} ms on ${where(last)}`);
      child.kill("SIGKILL");
    }, ms);
  };
  arm(120_000); // start-up (transpiling the sources) and the base images
  let buf = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let e: Event;
      try {
        e = JSON.parse(line) as Event;
      } catch {
        continue;
      }
      if (e.start) {
        last = e;
        arm(MUTANT_TIMEOUT_MS);
      } else if (e.end) {
        mutants.set(e.format!, (mutants.get(e.format!) ?? 0) + 1);
        if (e.opened) opened++;
        // The peak is the process's, so it is reported once: at the mutant that first passed it.
        if ((e.peakRss ?? 0) > RSS_LIMIT && !overLimit) {
          overLimit = true;
          failures.push(`peak RSS ${(e.peakRss! / 2 ** 20).toFixed(0)} MiB (limit 512) reached on ${where(last)}`);
        }
      } else if (e.bad) {
        failures.push(`${e.op} of ${where({ ...last, ...e, mutation: e.mutation ?? last?.mutation })} threw a non-ImageError: ${e.error}`);
      } else if (e.finished) {
        finished = true;
      }
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (t: string) => (stderr = (stderr + t).slice(-4000)));
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (!finished && !failures.some((f) => f.startsWith("hang"))) {
        failures.push(`worker died (code ${code}, signal ${signal}) on ${where(last)}: ${stderr.slice(-1500)}`);
      }
      resolve({ failures, mutants, opened });
    });
  });
}

describe("structure-aware fuzz", () => {
  it(`every mutant gives success or an ImageError, in bounded time and memory (seeds ${FIXED_SEED} and ${RANDOM_SEED})`, async () => {
    console.log(`fuzz: fixed seed ${FIXED_SEED}, random seed ${RANDOM_SEED} (rerun with VDISK_FUZZ_SEED=${RANDOM_SEED}), ${COUNT} mutants per seed and format`);
    const results = await Promise.all(GROUPS.map(runWorker));
    const failures = results.flatMap((r) => r.failures);
    const perFormat = new Map<string, number>();
    for (const r of results) for (const [f, n] of r.mutants) perFormat.set(f, n);
    const opened = results.reduce((a, r) => a + r.opened, 0);
    const total = [...perFormat.values()].reduce((a, b) => a + b, 0);
    console.log(`fuzz: ${total} mutants (${[...perFormat].map(([f, n]) => `${f} ${n}`).join(", ")}), ${opened} opened`);
    expect(failures, failures.slice(0, 20).join("\n\n")).toEqual([]);
    for (const f of GROUPS.flat()) expect(perFormat.get(f), f).toBe(2 * COUNT);
    // Mutants that still open are the ones that exercise more than header checks.
    expect(opened).toBeGreaterThan(total / 4);
  }, 600_000);
});
