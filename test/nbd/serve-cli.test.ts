// `vdisk serve` argument handling: usage errors, files that do not open, a port already taken.
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { tempDir } from "../helpers/qemu.js";

let tmp: ReturnType<typeof tempDir>;
let img = "";
beforeAll(() => {
  tmp = tempDir("vdisk-serve-cli-");
  img = tmp.path("d.raw");
  writeFileSync(img, Buffer.alloc(1 << 20));
});
afterAll(() => tmp?.cleanup());

async function cli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, isTTY: false });
  return { status, stdout, stderr };
}

describe("vdisk serve arguments", () => {
  it("--help describes the qemu-nbd flags; the command is listed in vdisk --help", async () => {
    const r = await cli("serve", "--help");
    expect(r.status).toBe(0);
    for (const flag of ["-r", "-x", "-p", "-b", "-k", "-t", "-e", "--allocation-depth", "--cache", "--pid-file"]) expect(r.stdout).toContain(flag);
    expect((await cli("--help")).stdout).toContain("serve [-f FMT]");
  });

  it.each([
    [[], /Expecting a file name/],
    [["-e", "0", "F"], /Invalid shared connection count '0'/],
    [["-p", "70000", "F"], /Invalid port '70000'/],
    [["--cache", "sometimes", "F"], /Invalid cache mode 'sometimes'/],
    [["F", "G"], /one -x NAME per file/],
    [["-x", "a", "-x", "b", "F"], /More -x NAME options than files/],
    [["--bogus", "F"], /unrecognized option '--bogus'/],
  ])("%j is a usage error (exit 1)", async (args, message) => {
    const r = await cli("serve", ...args.map((a) => (a === "F" || a === "G" ? img : a)));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });

  it("a file that does not open fails with qemu's message, before listening", async () => {
    const r = await cli("serve", "-p", "0", tmp.path("missing.qcow2"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Could not open '.*missing\.qcow2'/);
    expect(r.stdout).toBe("");
  });

  it("a port already in use fails with exit 1 and says so", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen({ host: "127.0.0.1", port: 0 }, () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = await cli("serve", "-p", String(port), "-f", "raw", img);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE/);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });
});
