// Runs the runtime scenario on files, in Node or Deno, through whatever `import "vdisk"`
// resolves to there (the package's `node` or `deno` export), and prints the report as JSON.
//   node run-scenario.mjs <fixturesDir> <scratchDir>
//   deno run --allow-read=<fixturesDir>,<scratchDir> --allow-write=<scratchDir> run-scenario.mjs …
import * as vdisk from "vdisk";
import { readScenario, writeScenario } from "./scenario.mjs";

const isDeno = typeof globalThis.Deno !== "undefined";
const args = isDeno ? globalThis.Deno.args : process.argv.slice(2);
const [fixtures, scratch] = args;
if (!fixtures || !scratch) throw new TypeError("usage: run-scenario.mjs <fixturesDir> <scratchDir>");

const readText = isDeno
  ? (p) => globalThis.Deno.readTextFile(p)
  : async (p) => (await import("node:fs/promises")).readFile(p, "utf8");
const expected = JSON.parse(await readText(`${fixtures}/runtime-expected.json`));

// "same-dir": the overlay fixture names its backing file "pattern.raw", beside it.
const open = (name) => vdisk.openImage(`${fixtures}/${name}`, { readOnly: true, backing: "same-dir" });
const made = (format) => `${scratch}/written.${format}`;
const report = {
  runtime: isDeno ? "deno" : "node",
  ...(await readScenario(vdisk, open, expected)),
  written: await writeScenario(
    vdisk,
    open,
    (format, size) => vdisk.createImage(made(format), { format, size }),
    (format) => vdisk.openImage(made(format), { format, readOnly: true }),
    expected,
  ),
  writtenFile: undefined,
};
report.writtenFile = made(report.written.format);
console.log(JSON.stringify(report));
