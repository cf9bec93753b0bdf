/**
 * `vdisk resize`, `rebase`, `commit` and `amend` against qemu-img 7.2: each command runs on one
 * copy of the same files with qemu-img and on another with vdisk; the output, stderr (program
 * name aside) and exit code must match, and afterwards qemu-img itself must find the vdisk
 * copies equal in content to its own (`compare`), clean (`check`) and with the same virtual
 * size and backing file (`info`). FVD (which qemu-img does not know) is checked through
 * `vdisk info` and against a raw model. A crash test cuts rebase's write stream everywhere.
 */
import { cpSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn, type FileOpener, type ImageDevice, type IoBackend } from "../../src/index.js";
import { rebaseImage } from "../../src/ops/rebase.js";
import { HAVE_QEMU, inDir, qemu, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk resize/rebase/commit/amend comparisons with qemu-img");

const MiB = 1 << 20;
const t = tempDir("vdisk-cli-rrac-");
afterAll(() => t.cleanup());

let seq = 0;
const templates = new Map<string, string>();
type Run = (tool: "qemu-img" | "qemu-io", ...args: string[]) => void;
/**
 * Runs `build` (qemu commands) in a fresh directory and copies its files into a second one: `q`
 * is for qemu-img, `v` for vdisk. With a `key`, the files are built once and copied after that.
 */
function twin(build: (run: Run) => void, key?: string): { q: string; v: string } {
  const q = t.path(`case${++seq}-q`);
  const v = t.path(`case${seq}-v`);
  const tpl = key ? templates.get(key) : undefined;
  if (tpl) {
    cpSync(tpl, q, { recursive: true });
  } else {
    mkdirSync(q);
    build((tool, ...args) => {
      const r = qemu(tool, args, q);
      if (r.status !== 0) throw new Error(`${tool} ${args.join(" ")} failed: ${r.stderr}`);
    });
    if (key) {
      templates.set(key, t.path(`template-${key}`));
      cpSync(q, t.path(`template-${key}`), { recursive: true });
    }
  }
  cpSync(q, v, { recursive: true });
  return { q, v };
}

/**
 * Output with the program's name made neutral: message prefixes, `Try '… --help'` hints (vdisk
 * names the command) and commands named in hints.
 */
function neutralText(text: string): string {
  return text
    .replace(/^(qemu-img|vdisk): /gm, "PROG: ")
    .replace(/^Try '(qemu-img|vdisk)( \w+)? --help' for more information$/gm, "Try --help")
    .replace(/'(qemu-img|vdisk) /g, "'PROG ");
}

/** Runs `qemu-img ARGS` in `dirs.q` and `vdisk ARGS` in `dirs.v`; output and exit code must match. */
async function both(dirs: { q: string; v: string }, args: string[]): Promise<number> {
  const ref = qemu("qemu-img", args, dirs.q);
  const ours = await inDir(dirs.v, () => vdisk(...args));
  expect(ours.stdout, `stdout of ${args.join(" ")}`).toBe(ref.stdout);
  expect(neutralText(ours.stderr), `stderr of ${args.join(" ")}`).toBe(neutralText(ref.stderr));
  expect(ours.status, `exit code of ${args.join(" ")}`).toBe(ref.status);
  return ref.status;
}

/** Byte equality without vitest's slow element-wise diff: reports the first differing offset. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  expect.fail(`${label}: first difference at byte ${i} (${actual[i]} instead of ${expected[i]})`);
}

/** The fields of `qemu-img info --output=json` these commands change. */
function infoOf(path: string, format?: string): Record<string, unknown> {
  const r = qemu("qemu-img", ["info", "--output=json", ...(format ? ["-f", format] : []), "-U", path]);
  expect(r.status, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  const fs = j["format-specific"] as { data?: Record<string, unknown> } | undefined;
  return {
    format: j.format,
    "virtual-size": j["virtual-size"],
    "backing-filename": j["backing-filename"],
    "backing-filename-format": j["backing-filename-format"],
    "lazy-refcounts": fs?.data?.["lazy-refcounts"],
  };
}

/** qemu-img sees the vdisk copy of `file` as it sees its own: same contents, size, backing; clean. */
function sameResult(dirs: { q: string; v: string }, file: string, format?: string): void {
  const f = format ? ["-f", format, "-F", format] : [];
  const cmp = qemu("qemu-img", ["compare", ...f, join(dirs.q, file), join(dirs.v, file)]);
  expect(cmp.stdout + cmp.stderr, `qemu-img compare of ${file}`).toBe("Images are identical.\n");
  expect(infoOf(join(dirs.v, file), format)).toEqual(infoOf(join(dirs.q, file), format));
  if (format !== "raw" && !file.endsWith(".raw")) {
    const chk = qemu("qemu-img", ["check", ...(format ? ["-f", format] : []), join(dirs.v, file)]);
    expect(chk.status, `qemu-img check of ${file}: ${chk.stdout}${chk.stderr}`).toBe(0);
  }
}

/** `qemu-img map --output=json` without host offsets (allocation order may differ). */
function layout(path: string): unknown {
  const r = qemu("qemu-img", ["map", "--output=json", path]);
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<Record<string, unknown>>).map(({ offset: _o, ...rest }) => rest);
}

/** A qcow2 image `top.qcow2` over `base.qcow2` (4 MiB), and a second base `base2.qcow2`. */
function qcow2Pair(run: Run, topOptions: string[] = []): void {
  run("qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "4M");
  run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 2M", "-c", "write -P 5 3M 4k", "base.qcow2");
  run("qemu-img", "create", "-q", "-f", "qcow2", "base2.qcow2", "4M");
  run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", "-c", "write -P 3 3M 512", "-c", "write -P 6 1100k 8k", "base2.qcow2");
  run("qemu-img", "create", "-q", "-f", "qcow2", ...topOptions, "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
  run("qemu-io", "-f", "qcow2", "-c", "write -P 2 1M 64k", "-c", "write -z 1536k 64k", "-c", "write -P 4 2047k 2k", "top.qcow2");
}

describe.skipIf(!HAVE_QEMU)("vdisk resize matches qemu-img resize", () => {
  it("qcow2: grow, relative sizes, shrink with and without --shrink, bad sizes", async () => {
    const cases = [
      ["8M"], ["+1M"], ["-q", "+512k"], ["--shrink", "--", "-1M"], ["--shrink", "2M"], ["2M"], ["3145729"],
      ["0"], ["4Q"], ["1.5"], ["-f", "qcow2", "6M"], ["--preallocation=bogus", "6M"],
    ];
    for (const extra of cases) {
      const d = twin((run) => qcow2Pair(run), "pair");
      const size = extra[extra.length - 1];
      await both(d, ["resize", ...extra.slice(0, -1), "top.qcow2", size]);
      sameResult(d, "top.qcow2");
    }
  });

  it("raw: grow and shrink to any byte count; qed: grow; formats that cannot resize", async () => {
    const raw = twin((run) => {
      run("qemu-img", "create", "-q", "-f", "raw", "a.raw", "1M");
      run("qemu-io", "-f", "raw", "-c", "write -P 7 0 1M", "a.raw");
    });
    for (const args of [["+1000"], ["--shrink", "100000"], ["50000"]]) {
      await both(raw, ["resize", "-f", "raw", ...args.slice(0, -1), "a.raw", args[args.length - 1]]);
      expectSameBytes(readFileSync(join(raw.v, "a.raw")), readFileSync(join(raw.q, "a.raw")), `a.raw after resize ${args.join(" ")}`);
    }
    const qed = twin((run) => run("qemu-img", "create", "-q", "-f", "qed", "a.qed", "4M"));
    await both(qed, ["resize", "a.qed", "+4M"]);
    sameResult(qed, "a.qed");
    await both(qed, ["resize", "a.qed", "2M"]);
    for (const format of ["vpc", "vmdk", "vdi", "qcow"]) {
      const d = twin((run) => run("qemu-img", "create", "-q", "-f", format, `a.${format}`, "4M"));
      await both(d, ["resize", `a.${format}`, "8M"]);
      await both(d, ["resize", `a.${format}`, "2M"]);
    }
    const none = twin(() => {});
    await both(none, ["resize", "missing.qcow2"]);
    await both(none, ["resize", "a", "b", "1M"]);
    const missing = await inDir(none.v, () => vdisk("resize", "missing.qcow2", "1M"));
    expect(missing.status).toBe(qemu("qemu-img", ["resize", "missing.qcow2", "1M"], none.q).status);
  });
});

describe.skipIf(!HAVE_QEMU)("vdisk resize: what the guest reads in a grown range, as with qemu-img", () => {
  /** `qemu-io -c "read -P BYTE …"` on `file` in `dir` succeeds without a pattern mismatch. */
  const reads = (dir: string, file: string, format: string, byte: number, range: string): void => {
    const r = qemu("qemu-io", ["-f", format, "-c", `read -P ${byte} ${range}`, file], dir);
    expect(r.stdout + r.stderr, `${file} ${range} reads ${byte}`).not.toMatch(/Pattern verification failed|failed/);
  };
  /** qcow2 `top.qcow2` (1M, 0x22 everywhere) over `base.raw` (0x11) of `baseSize`, or over nothing. */
  const overlay = (options: string, baseSize?: string) => (run: Run): void => {
    const backing = baseSize ? ["-b", "base.raw", "-F", "raw"] : [];
    if (baseSize) {
      run("qemu-img", "create", "-q", "-f", "raw", "base.raw", baseSize);
      run("qemu-io", "-f", "raw", "-c", `write -P 0x11 0 ${baseSize}`, "base.raw");
    }
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", options, ...backing, "top.qcow2", "1M");
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 0 1M", "top.qcow2");
  };
  const QCOW2_VARIANTS = ["compat=1.1", "compat=0.10", "compat=1.1,extended_l2=on"];

  it("qcow2: a range shrunk away and grown back reads zeros over a longer backing file (qemu-iotests 292)", async () => {
    for (const options of QCOW2_VARIANTS) {
      // 1M: the backing file would show; 256k: it ends before the cut; none: the old data returns.
      for (const baseSize of ["1M", "256k", undefined]) {
        const d = twin(overlay(options, baseSize));
        // Both sizes lie in one 64k cluster, which keeps the data past 520k.
        await both(d, ["resize", "--shrink", "top.qcow2", "520k"]);
        await both(d, ["resize", "top.qcow2", "567k"]);
        sameResult(d, "top.qcow2");
        expect(layout(join(d.v, "top.qcow2")), `map, -o ${options}, base ${baseSize}`).toEqual(layout(join(d.q, "top.qcow2")));
        reads(d.v, "top.qcow2", "qcow2", 0x22, "0 520k");
        reads(d.v, "top.qcow2", "qcow2", baseSize === "1M" ? 0 : 0x22, "520k 47k");
      }
    }
  });

  it("qcow2 v3: whole clusters grown over a longer backing file read zeros", async () => {
    for (const options of ["compat=1.1", "compat=1.1,extended_l2=on"]) {
      const d = twin(overlay(options, "2M"));
      await both(d, ["resize", "top.qcow2", "2M"]);
      sameResult(d, "top.qcow2");
      expect(layout(join(d.v, "top.qcow2"))).toEqual(layout(join(d.q, "top.qcow2")));
      reads(d.v, "top.qcow2", "qcow2", 0, "1M 1M");
    }
  });

  it("qcow2 v2 and qed grow over a longer backing file with zeros where qemu-img refuses", async () => {
    // qemu-img 7.2 cannot zero whole clusters there (v2 has no zero clusters; its qed driver takes
    // no zero-write truncation) and fails; vdisk writes zeros (v2) or zero clusters (qed).
    const v2 = twin(overlay("compat=0.10", "2M"));
    expect(qemu("qemu-img", ["resize", "top.qcow2", "2M"], v2.q).status).not.toBe(0);
    expect((await inDir(v2.v, () => vdisk("resize", "top.qcow2", "2M"))).status).toBe(0);
    reads(v2.v, "top.qcow2", "qcow2", 0x22, "0 1M");
    reads(v2.v, "top.qcow2", "qcow2", 0, "1M 1M");
    expect(qemu("qemu-img", ["check", "top.qcow2"], v2.v).status).toBe(0);
    const qed = twin((run) => {
      run("qemu-img", "create", "-q", "-f", "raw", "base.raw", "2M");
      run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 2M", "base.raw");
      run("qemu-img", "create", "-q", "-f", "qed", "-b", "base.raw", "-F", "raw", "top.qed", "1M");
      run("qemu-io", "-f", "qed", "-c", "write -P 0x22 0 64k", "top.qed");
    });
    expect(qemu("qemu-img", ["resize", "top.qed", "2M"], qed.q).status).not.toBe(0);
    expect((await inDir(qed.v, () => vdisk("resize", "top.qed", "2M"))).status).toBe(0);
    reads(qed.v, "top.qed", "qed", 0x22, "0 64k");
    reads(qed.v, "top.qed", "qed", 0x11, "64k 960k");
    reads(qed.v, "top.qed", "qed", 0, "1M 1M");
    expect(qemu("qemu-img", ["check", "-f", "qed", "top.qed"], qed.v).status).toBe(0);
  });
});

describe.skipIf(!HAVE_QEMU)("vdisk rebase matches qemu-img rebase", () => {
  it("qcow2 safe rebase onto another base keeps the contents and records the new name and format", async () => {
    for (const topOptions of [[], ["-o", "compat=0.10"], ["-o", "extended_l2=on,cluster_size=64k"]]) {
      const key = `pair${topOptions.join("")}`;
      const d = twin((run) => qcow2Pair(run, topOptions), key);
      await both(d, ["rebase", "-b", "base2.qcow2", "-F", "qcow2", "top.qcow2"]);
      sameResult(d, "top.qcow2");
      // The contents are still those of the image before the rebase.
      const before = twin((run) => qcow2Pair(run, topOptions), key);
      expect(qemu("qemu-img", ["compare", join(before.q, "top.qcow2"), join(d.v, "top.qcow2")]).status).toBe(0);
    }
  });

  it("qcow2 rebase -b \"\" flattens; -u changes the name only; errors as qemu-img", async () => {
    const cases = [
      ["-b", ""], ["-u", "-b", "base2.qcow2", "-F", "qcow2"], ["-u", "-b", ""], ["-u"], ["-q", "-b", "base2.qcow2", "-F", "qcow2"],
      ["-u", "-b", "base2.qcow2"], ["-b", "base2.qcow2"], [], ["-b", "missing.qcow2", "-F", "qcow2"], ["-b", "x", "-F", "nosuchfmt"],
      ["-u", "-b", "moved/base.qcow2", "-F", "qcow2"],
    ];
    for (const args of cases) {
      const d = twin((run) => qcow2Pair(run), "pair");
      const status = await both(d, ["rebase", ...args, "top.qcow2"]);
      if (status === 0 && !args.includes("moved/base.qcow2")) sameResult(d, "top.qcow2");
      else expect(infoOf(join(d.v, "top.qcow2"))).toEqual(infoOf(join(d.q, "top.qcow2")));
    }
    const flat = twin((run) => qcow2Pair(run), "pair");
    await both(flat, ["rebase", "-b", "", "top.qcow2"]);
    // Flattened: it reads the same with its old base gone.
    renameSync(join(flat.v, "base.qcow2"), join(flat.v, "gone.qcow2"));
    const original = twin((run) => qcow2Pair(run), "pair");
    expect(qemu("qemu-img", ["compare", join(original.q, "top.qcow2"), join(flat.v, "top.qcow2")]).stdout).toBe("Images are identical.\n");
  });

  it("a new backing file name is taken relative to the image's directory", async () => {
    const d = twin((run) => {
      mkdirSync(join(t.path(`case${seq}-q`), "sub"));
      qcow2Pair(run);
      run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", "sub/top.qcow2");
      run("qemu-io", "-f", "qcow2", "-c", "write -P 9 64k 64k", "sub/top.qcow2");
    });
    await both(d, ["rebase", "-b", "../base2.qcow2", "-F", "qcow2", "sub/top.qcow2"]);
    sameResult(d, "sub/top.qcow2");
  });

  it("qed: safe, unsafe and flattening rebases; vpc and raw cannot record a backing file", async () => {
    const build = (run: Run): void => {
      run("qemu-img", "create", "-q", "-f", "raw", "b.raw", "2M");
      run("qemu-io", "-f", "raw", "-c", "write -P 1 0 2M", "b.raw");
      run("qemu-img", "create", "-q", "-f", "raw", "b2.raw", "3M");
      run("qemu-io", "-f", "raw", "-c", "write -P 1 0 1M", "-c", "write -P 2 2M 1M", "b2.raw");
      run("qemu-img", "create", "-q", "-f", "qed", "-b", "b.raw", "-F", "raw", "t.qed", "4M");
      run("qemu-io", "-f", "qed", "-c", "write -P 9 512k 128k", "-c", "write -P 8 3M 64k", "t.qed");
      run("qemu-img", "create", "-q", "-f", "vpc", "x.vpc", "4M");
    };
    for (const args of [["-b", "b2.raw", "-F", "raw"], ["-u", "-b", "b2.raw", "-F", "raw"], ["-b", ""], ["-u", "-b", ""]]) {
      const d = twin(build, "qed");
      await both(d, ["rebase", ...args, "t.qed"]);
      sameResult(d, "t.qed");
    }
    const d = twin(build);
    await both(d, ["rebase", "-u", "-b", "b2.raw", "-F", "raw", "x.vpc"]);
    await both(d, ["rebase", "-b", "", "x.vpc"]);
    await both(d, ["rebase", "-f", "raw", "-b", "", "b.raw"]);
    await both(d, ["rebase", "-f", "raw", "-b", "b2.raw", "b.raw"]);
  });
});

describe.skipIf(!HAVE_QEMU)("vdisk commit matches qemu-img commit", () => {
  const chain = (run: Run): void => {
    run("qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "4M");
    run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 2M", "base.qcow2");
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "mid.qcow2");
    run("qemu-io", "-f", "qcow2", "-c", "write -P 2 1M 64k", "-c", "write -z 3M 64k", "mid.qcow2");
    // Larger than its backing files: committing grows the target.
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2", "6M");
    run("qemu-io", "-f", "qcow2", "-c", "write -P 3 1536k 4k", "-c", "write -z 0 4k", "-c", "write -P 4 5M 64k", "-c", "write -z 1M 64k", "top.qcow2");
    run("qemu-img", "convert", "-c", "-O", "qcow2", "-B", "mid.qcow2", "-F", "qcow2", "top.qcow2", "ctop.qcow2");
  };

  it("into the backing file (emptying the image unless -d), into a base further down (-b), errors", async () => {
    const cases = [[], ["-d"], ["-b", "base.qcow2"], ["-b", "mid.qcow2"], ["-q", "-p"], ["-b", "nothere.qcow2"], ["-b", "top.qcow2"]];
    for (const args of cases) {
      const d = twin(chain, "chain");
      const status = await both(d, ["commit", ...args, "top.qcow2"]);
      for (const f of ["top.qcow2", "mid.qcow2", "base.qcow2"]) sameResult(d, f);
      if (status === 0) expect(layout(join(d.v, "top.qcow2"))).toEqual(layout(join(d.q, "top.qcow2")));
    }
    const d = twin(chain, "chain");
    await both(d, ["commit", "ctop.qcow2"]);
    for (const f of ["ctop.qcow2", "mid.qcow2", "base.qcow2"]) sameResult(d, f);
    await both(d, ["commit", "base.qcow2"]);
    // -b names the base by any path to it: here an absolute one.
    const abs = twin(chain, "chain");
    expect(qemu("qemu-img", ["commit", "-b", "base.qcow2", "top.qcow2"], abs.q).status).toBe(0);
    const ours = await inDir(abs.v, () => vdisk("commit", "-b", join(abs.v, "base.qcow2"), "top.qcow2"));
    expect(ours.stdout + ours.stderr).toBe("Image committed.\n");
    for (const f of ["top.qcow2", "mid.qcow2", "base.qcow2"]) sameResult(abs, f);
    const r = await inDir(d.v, () => vdisk("commit", "-p", "top.qcow2"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\(100\.00\/100%\)\r\nImage committed\.\n$/);
  });

  it("a qcow (v1) image is emptied as qemu-img empties it; vmdk keeps its data (qemu-iotests 097)", async () => {
    for (const format of ["qcow", "vmdk"]) {
      const baseFormat = format === "vmdk" ? "vmdk" : "raw";
      const d = twin((run) => {
        run("qemu-img", "create", "-q", "-f", baseFormat, "base.img", "1M");
        run("qemu-io", "-f", baseFormat, "-c", "write -P 0x11 0 1M", "base.img");
        run("qemu-img", "create", "-q", "-f", format, "-b", "base.img", "-F", baseFormat, `top.${format}`);
        run("qemu-io", "-f", format, "-c", "write -P 0x22 64k 128k", "-c", "write -P 0x33 900k 4k", `top.${format}`);
      });
      const top = `top.${format}`;
      await both(d, ["commit", top]);
      const cmp = qemu("qemu-img", ["compare", "-f", baseFormat, "-F", baseFormat, join(d.q, "base.img"), join(d.v, "base.img")]);
      expect(cmp.stdout + cmp.stderr, `base under ${format} after commit`).toBe("Images are identical.\n");
      // qemu 7.2 cannot read a vmdk overlay after a commit: the base's CID changed, and the
      // parentCID check fails (vdisk warns); compare the qcow overlays only.
      if (format === "qcow") {
        const cmpTop = qemu("qemu-img", ["compare", "-f", format, "-F", format, join(d.q, top), join(d.v, top)]);
        expect(cmpTop.stdout + cmpTop.stderr, `${top} after commit`).toBe("Images are identical.\n");
      }
      // Emptied (qcow): everything at depth 1; kept (vmdk): the written ranges still at depth 0.
      expect(layout(join(d.v, top)), `map of ${top}`).toEqual(layout(join(d.q, top)));
      if (format === "qcow") {
        expect(readFileSync(join(d.v, top)).length, "qcow file cut back to its header and L1 table").toBe(readFileSync(join(d.q, top)).length);
        expect((await inDir(d.v, () => vdisk("check", top))).status).toBe(0);
      }
    }
  });

  it("a qed image into its raw backing file (qed keeps its data, as with qemu-img)", async () => {
    const d = twin((run) => {
      run("qemu-img", "create", "-q", "-f", "raw", "b.raw", "2M");
      run("qemu-io", "-f", "raw", "-c", "write -P 1 0 2M", "b.raw");
      run("qemu-img", "create", "-q", "-f", "qed", "-b", "b.raw", "-F", "raw", "t.qed", "4M");
      run("qemu-io", "-f", "qed", "-c", "write -P 9 512k 128k", "-c", "write -P 8 3M 64k", "t.qed");
    });
    await both(d, ["commit", "t.qed"]);
    expectSameBytes(readFileSync(join(d.v, "b.raw")), readFileSync(join(d.q, "b.raw")), "b.raw after commit");
    sameResult(d, "t.qed");
  });
});

describe.skipIf(!HAVE_QEMU)("vdisk amend matches qemu-img amend", () => {
  it("qcow2: lazy_refcounts, size, the unchanged values of other options, errors", async () => {
    const cases = [
      "lazy_refcounts=on", "lazy_refcounts", "lazy_refcounts=off", "lazy_refcounts=maybe", "size=8M", "size=2M,lazy_refcounts=on",
      "size=1000", "compat=2", "refcount_bits=16", "cluster_size=4k", "foo=1", "backing_file=base2.qcow2",
      "backing_file=base.qcow2,backing_fmt=qcow2", "data_file=x",
    ];
    for (const o of cases) {
      for (const v2 of [false, true]) {
        const d = twin((run) => qcow2Pair(run, v2 ? ["-o", "compat=0.10"] : []), v2 ? "pair-ocompat=0.10" : "pair");
        await both(d, ["amend", "-o", o, "top.qcow2"]);
        if (o === "size=8M") await both(d, ["amend", "-o", v2 ? "compat=0.10" : "compat=v3", "top.qcow2"]);
        sameResult(d, "top.qcow2");
      }
    }
    const d = twin((run) => qcow2Pair(run), "pair");
    await both(d, ["amend", "top.qcow2"]);
    await both(d, ["amend", "-o", "size=4M", "-o", "lazy_refcounts=on", "top.qcow2"]);
    sameResult(d, "top.qcow2");
    await both(d, ["amend", "-f", "raw", "-o", "size=1M", "base.qcow2"]);
    await both(d, ["amend", "-f", "vmdk", "-o", "help"]);
    // qemu-img also lists its encrypt.* options, which vdisk does not support.
    const help = await inDir(d.v, () => vdisk("amend", "-o", "help", "top.qcow2"));
    const ref = qemu("qemu-img", ["amend", "-o", "help", "top.qcow2"], d.q);
    expect(help.stdout).toBe(ref.stdout.split("\n").filter((l) => !l.includes("encrypt.")).join("\n"));
  });

  it("vdisk refuses what it cannot amend in place, leaving the image as it was", async () => {
    const d = twin((run) => qcow2Pair(run), "pair");
    for (const o of ["compat=0.10", "refcount_bits=8"]) {
      const r = await inDir(d.v, () => vdisk("amend", "-o", o, "top.qcow2"));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^vdisk: Changing the .* is not supported by vdisk/);
      sameResult(d, "top.qcow2");
    }
  });
});

describe("FVD through the CLI: rebase -b \"\" flattens, amend edits the header", () => {
  const fvdInfo = async (dir: string, file: string): Promise<Record<string, unknown>> => {
    const r = await inDir(dir, () => vdisk("info", "--output=json", file));
    expect(r.status, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { "format-specific": { data: Record<string, unknown> } })["format-specific"].data;
  };

  it("flatten pulls every block from the base; the image then reads the same without it", async () => {
    const dir = t.path("fvd");
    mkdirSync(dir);
    const base = new Uint8Array(3 * MiB).map((_, i) => ((i >> 9) * 7 + 3) & 0xff);
    base.fill(0, MiB, MiB + 256 * 1024); // zero blocks in the base, not copied
    writeFileSync(join(dir, "base.raw"), base);
    const model = new Uint8Array(4 * MiB);
    model.set(base);
    await inDir(dir, async () => {
      for (const [opts, name] of [[[], "plain.fvd"], [["-o", "compact_image=on,chunk_size=256k"], "compact.fvd"]] as const) {
        expect((await vdisk("create", "-q", "-f", "fvd", ...opts, "-b", "base.raw", "-F", "raw", name, "4M")).status).toBe(0);
        const io = await vdisk("io", "-c", "write -P 0x41 1000k 100k", "-c", "write -z 2M 64k", name);
        expect(io.status, io.stderr).toBe(0);
      }
    });
    model.fill(0x41, 1000 * 1024, 1100 * 1024);
    model.fill(0, 2 * MiB, 2 * MiB + 64 * 1024);
    writeFileSync(join(dir, "model.raw"), model);
    for (const name of ["plain.fvd", "compact.fvd"]) {
      expect((await fvdInfo(dir, name)).all_data_in_fvd_img).toBe(0);
      const u = await inDir(dir, () => vdisk("rebase", "-u", "-b", "", name));
      expect(u.status).toBe(1);
      expect(u.stderr).toMatch(/^vdisk: Could not change the backing file to '': fvd images can only be flattened/);
      const r = await inDir(dir, () => vdisk("rebase", "-p", "-b", "", name));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/\(100\.00\/100%\)\r\n$/);
      const info = await fvdInfo(dir, name);
      expect(info.all_data_in_fvd_img).toBe(1);
      expect((info.derived as Record<string, unknown>)["uses-base-image"]).toBe(false);
    }
    renameSync(join(dir, "base.raw"), join(dir, "moved.raw"));
    for (const name of ["plain.fvd", "compact.fvd"]) {
      const c = await inDir(dir, () => vdisk("compare", "-f", "fvd", "-F", "raw", name, "model.raw"));
      expect(c.stdout + c.stderr).toBe("Images are identical.\n");
      expect((await inDir(dir, () => vdisk("check", name))).status).toBe(0);
    }
  });

  it("amend sets the header attributes of FVD's qemu-img update and resizes", async () => {
    const dir = t.path("fvd-amend");
    mkdirSync(dir);
    writeFileSync(join(dir, "base.raw"), new Uint8Array(MiB).fill(9));
    await inDir(dir, async () => {
      expect((await vdisk("create", "-q", "-f", "fvd", "-b", "base.raw", "-F", "raw", "a.fvd", "2M")).status).toBe(0);
      const r = await vdisk("amend", "-o", "copy_on_read=on,prefetch_start_delay=5", "-o", "size=3M,base_img=other.raw", "a.fvd");
      expect(r.status, r.stderr).toBe(0);
      const bad = await vdisk("amend", "-o", "nosuch=1", "a.fvd");
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/^vdisk: Cannot amend fvd image: unknown attribute 'nosuch'/);
      const help = await vdisk("amend", "-o", "help", "a.fvd");
      expect(help.stdout).toMatch(/^Amend options for 'fvd':\n(.|\n)*  copy_on_read=<bool \(on\/off\)>/);
    });
    const info = await fvdInfo(dir, "a.fvd");
    expect(info).toMatchObject({ copy_on_read: 1, prefetch_start_delay: 5, base_img: "other.raw", virtual_disk_size: 3 * MiB });
  });
});

describe("rebase is crash safe: a cut anywhere leaves an image that checks clean and reads as before", () => {
  const SIZE = 256 * 1024;
  const files = new Map<string, Uint8Array>();
  const opener: FileOpener = async (req) => {
    const bytes = files.get(req.name);
    if (!bytes) throw new Error(`no file ${req.name}`);
    return new MemoryBackend(bytes.slice(), { name: req.name, readOnly: !req.writable });
  };
  const open = (io: IoBackend, readOnly = false): Promise<ImageDevice> =>
    openImageOn(io, { backing: "any", openFile: opener, readOnly });

  beforeAll(() => {
    files.set("old.raw", new Uint8Array(SIZE).map((_, i) => (i * 31 + 7) & 0xff));
    const next = files.get("old.raw")!.slice();
    next.fill(0, 60_000, 100_000);
    next.fill(3, 180_000, 190_000);
    files.set("new.raw", next);
  });

  for (const [format, options, target] of [
    ["qcow2", "cluster_size=4k", "new.raw"],
    ["qcow2", "compat=0.10,cluster_size=4k", undefined],
    ["qed", "cluster_size=4k", "new.raw"],
  ] as const) {
    it(`${format} ${options} onto ${target ?? "nothing"}`, async () => {
      const mem = new MemoryBackend(new Uint8Array(0), { name: "top" });
      const img = await createImageOn(mem, { format, options, backingFile: "old.raw", backingFormat: "raw", backing: "any", openFile: opener });
      await img.write(20_000, new Uint8Array(50_000).fill(0x55));
      await img.write(170_000, new Uint8Array(5_000).fill(0x66));
      const expected = await img.read(0, SIZE);
      await img.close();
      const before = mem.bytes().slice();

      const fault = FaultBackend.over(before, { name: "top" });
      const dev = await open(fault);
      const nb = target ? await open(new MemoryBackend(files.get(target)!.slice(), { name: target }), true) : undefined;
      await rebaseImage(dev, target ? { name: target, format: "raw" } : undefined, { newBacking: nb });
      await dev.close();
      await nb?.close();

      const n = fault.mutationCount;
      // Every flush point, the last mutations (the reference change) and an even sample.
      const cuts = new Set([...fault.flushPoints(), ...Array.from({ length: 8 }, (_, i) => n - i)]);
      for (let i = 0; i <= 24; i++) cuts.add(Math.round((i * n) / 24));
      let sawNew = false;
      for (const cut of [...cuts].filter((c) => c >= 0 && c <= n).sort((a, b) => a - b)) {
        const after = await fault.replay({ ops: cut });
        const re = await open(after);
        expectSameBytes(await re.read(0, SIZE), expected, `contents after a crash at mutation ${cut} of ${n}`);
        const chk = await re.check();
        expect(chk.corruptions, `corruptions after a crash at mutation ${cut}`).toBe(0);
        sawNew ||= re.backingFile?.name === target;
        await re.close();
      }
      expect(sawNew).toBe(true);
    });
  }
});
