// Runs the convert scenario on files, in Node or Deno, through whatever `import "vdisk"`
// resolves to there, and prints the report as JSON; the targets are <scratchDir>/full.vhdx and
// <scratchDir>/aborted.vhdx.
//   node run-convert.mjs <source.qcow2> <scratchDir>
//   deno run --allow-read=<source>,<scratchDir> --allow-write=<scratchDir> run-convert.mjs …
import * as vdisk from "vdisk";
import { CONVERT_TARGET, convertScenario } from "./scenario.mjs";

const isDeno = typeof globalThis.Deno !== "undefined";
const [source, scratch] = isDeno ? globalThis.Deno.args : process.argv.slice(2);
if (!source || !scratch) throw new TypeError("usage: run-convert.mjs <source.qcow2> <scratchDir>");

const path = (name) => `${scratch}/${name}.${CONVERT_TARGET.format}`;
const report = await convertScenario(
  vdisk,
  () => vdisk.openImage(source, { readOnly: true }),
  (name, size) => vdisk.createImage(path(name), { ...CONVERT_TARGET, size }),
  (name) => vdisk.openImage(path(name), { format: CONVERT_TARGET.format, readOnly: true }),
);
const files = { full: path("full"), aborted: path("aborted") };
console.log(JSON.stringify({ runtime: isDeno ? "deno" : "node", ...report, files }));
