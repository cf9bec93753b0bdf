/**
 * The CLI as a program: help texts, usage errors, exit codes, no stack traces, and the built
 * `dist/cli/main.js` bin run once.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../../src/cli/run.js";
import { tempDir, vdisk } from "./cli-helpers.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = join(root, "dist", "cli", "main.js");

describe("vdisk CLI", () => {
  const t = tempDir("vdisk-cli-");
  afterAll(() => t.cleanup());

  it("--help lists every command and exits 0", async () => {
    const r = await vdisk("--help");
    expect(r.status).toBe(0);
    for (const c of ["info", "create", "convert", "map", "check", "compare", "io"]) expect(r.stdout).toContain(`  ${c} `);
  });

  it("every command has --help, exit 0, starting with its usage line", async () => {
    for (const c of COMMANDS) {
      const r = await vdisk(c.name, "--help");
      expect(r.status).toBe(0);
      expect(r.stdout.startsWith(`usage: vdisk ${c.name} `)).toBe(true);
      expect(r.stderr).toBe("");
    }
  });

  it("unknown options and commands are usage errors with exit 1", async () => {
    expect(await vdisk("info", "--bogus", "x")).toEqual({
      status: 1,
      stdout: "",
      stderr: "vdisk: unrecognized option '--bogus'\nTry 'vdisk info --help' for more information\n",
    });
    expect((await vdisk("convert", "-Z", "a", "b")).stderr).toBe("vdisk: invalid option -- 'Z'\nTry 'vdisk convert --help' for more information\n");
    expect((await vdisk("map", "-f")).stderr).toMatch(/^vdisk: option requires an argument -- 'f'\n/);
    expect(await vdisk("frobnicate")).toEqual({
      status: 1,
      stdout: "",
      stderr: "vdisk: Command not found: frobnicate\nTry 'vdisk --help' for more information\n",
    });
    expect((await vdisk()).status).toBe(1);
    expect((await vdisk("info", "--output=xml", "x")).stderr).toMatch(/^vdisk: --output must be used with human or json/);
  });

  it("options may follow operands, as with GNU getopt", async () => {
    writeFileSync(t.path("small.raw"), new Uint8Array(4096).fill(1));
    const r = await vdisk("info", t.path("small.raw"), "--output", "json");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)["virtual-size"]).toBe(4096);
  });

  it("a broken image gives one error line and no stack trace; --debug adds the stack", async () => {
    // A qcow2 magic with an absurd header: whatever the driver says, the CLI prints one line.
    const bad = new Uint8Array(512);
    bad.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]);
    bad.fill(0xff, 8, 104);
    writeFileSync(t.path("bad.qcow2"), bad);
    const r = await vdisk("info", t.path("bad.qcow2"));
    expect(r.status).toBe(1);
    expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^vdisk: Could not open '${t.path("bad.qcow2")}': `));
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const d = await vdisk("--debug", "info", t.path("bad.qcow2"));
    expect(d.stderr).toMatch(/\n\s+at /);
  });

  // npm makes the bin executable when it links it; the shebang is ours to keep.
  it.skipIf(!existsSync(bin))("the built bin starts with a shebang and runs", () => {
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    writeFileSync(t.path("b.raw"), new Uint8Array(65536));
    const r = spawnSync(process.execPath, [bin, "info", "--output=json", t.path("b.raw")], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ "virtual-size": 65536, format: "raw" });
    const e = spawnSync(process.execPath, [bin, "info", t.path("none.raw")], { encoding: "utf8" });
    expect(e.status).toBe(1);
    expect(e.stderr).toBe(`vdisk: Could not open '${t.path("none.raw")}': No such file or directory\n`);
  });
  if (!existsSync(bin)) console.warn(`\n*** SKIPPED: ${bin} not built (npm run build) — the bin test did not run ***\n`);
});
