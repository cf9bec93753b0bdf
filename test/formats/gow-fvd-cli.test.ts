/**
 * GOW and FVD through the CLI, as a user would drive them: raw → gow1/gow2/fvd (plain, compact,
 * compact with small chunks, over a base) with `vdisk convert`, `vdisk io` writes in between,
 * `vdisk check` clean, `vdisk map`/`info`, and back to raw identical to a model.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { diffAt, fillPattern } from "./gow-fvd-helpers.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vdisk-gowfvd-cli-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const KiB = 1024;
const MiB = 1 << 20;

async function vdisk(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(args, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    isTTY: false,
  });
  return { status, stdout, stderr };
}

const p = (name: string): string => path.join(dir, name);

describe("vdisk with gow and fvd", () => {
  const size = 3 * MiB;
  const raw = fillPattern(size, 21);
  raw.fill(0, 512 * KiB, 1536 * KiB); // a zero hole the converter skips
  fs.writeFileSync(p("in.raw"), raw);
  const base = fillPattern(2 * MiB, 9);
  fs.writeFileSync(p("base.raw"), base);

  // The last field: the zero hole shows as unallocated (allocation units small enough; a plain
  // fvd image maps every byte to its data area).
  const cases: Array<[string, string[], boolean]> = [
    ["gow1", ["-O", "gow1"], true],
    ["gow2", ["-O", "gow2"], true],
    ["fvd", ["-O", "fvd"], false],
    ["fvd-compact", ["-O", "fvd", "-o", "compact_image=on,storage_grow_unit=1M"], false],
    ["fvd-small", ["-O", "fvd", "-o", "compact_image=on,chunk_size=4k,storage_grow_unit=64k,journal_size=8k"], true],
  ];
  for (const [label, opts, sparse] of cases) {
    it(`convert raw → ${label} → raw with io writes in between, check clean`, { timeout: 30000 }, async () => {
      const img = p(`${label}.img`);
      const conv = await vdisk("convert", "-f", "raw", ...opts, p("in.raw"), img);
      expect(conv.status, conv.stderr).toBe(0);
      const io = await vdisk("io", "-c", "write -P 0xab 100k 5000", "-c", "write -z 2M 64k", "-c", "write -P 0x11 2900k 3k", img);
      expect(io.status, io.stderr + io.stdout).toBe(0);
      const model = raw.slice();
      model.fill(0xab, 100 * KiB, 100 * KiB + 5000);
      model.fill(0, 2 * MiB, 2 * MiB + 64 * KiB);
      model.fill(0x11, 2900 * KiB, 2903 * KiB);
      const check = await vdisk("check", img);
      expect(check.status, check.stdout + check.stderr).toBe(0);
      expect(check.stdout).toMatch(/No errors were found/);
      const back = await vdisk("convert", "-O", "raw", img, p(`${label}.raw`));
      expect(back.status, back.stderr).toBe(0);
      expect(diffAt(fs.readFileSync(p(`${label}.raw`)), model)).toBe(-1);
      const map = await vdisk("map", "--output=json", img);
      expect(map.status, map.stderr).toBe(0);
      const extents = JSON.parse(map.stdout) as Array<{ start: number; length: number; data: boolean }>;
      // The converted zero hole (minus the io write) is not stored.
      const hole = extents.find((e) => e.start <= 600 * KiB && e.start + e.length > 600 * KiB)!;
      expect(hole.data).toBe(!sparse);
    });
  }

  it("fvd over a base: create -b, io writes, info shows the header, flatten-free convert back", async () => {
    const img = p("over.fvd");
    const c = await vdisk("create", "-f", "fvd", "-b", "base.raw", "-F", "raw", img, "3M");
    expect(c.status, c.stderr).toBe(0);
    const io = await vdisk("io", "-c", "write -P 0x77 1M 512", img);
    expect(io.status, io.stderr).toBe(0);
    const info = await vdisk("info", "--output=json", img);
    expect(info.status, info.stderr).toBe(0);
    const j = JSON.parse(info.stdout) as { format: string; "backing-filename": string; "format-specific": { type: string; data: Record<string, unknown> } };
    expect(j.format).toBe("fvd");
    expect(j["backing-filename"]).toBe("base.raw");
    expect(j["format-specific"].data.base_img).toBe("base.raw");
    expect(j["format-specific"].data.block_size).toBe(512);
    expect(j["format-specific"].data.clean_shutdown).toBe(1);
    const check = await vdisk("check", img);
    expect(check.status, check.stdout).toBe(0);
    const back = await vdisk("convert", "-O", "raw", img, p("over.raw"));
    expect(back.status, back.stderr).toBe(0);
    const model = new Uint8Array(3 * MiB);
    model.set(base);
    model.fill(0x77, MiB, MiB + 512);
    expect(diffAt(fs.readFileSync(p("over.raw")), model)).toBe(-1);
  });

  it("gow create refuses a backing file and a size below one block", async () => {
    const a = await vdisk("create", "-f", "gow1", "-b", "base.raw", "-F", "raw", p("x.gow"), "1M");
    expect(a.status).not.toBe(0);
    const b = await vdisk("create", "-f", "gow2", p("y.gow"), "512");
    expect(b.status).not.toBe(0);
    expect(b.stderr).toMatch(/below one 64 KiB block/);
  });
});
