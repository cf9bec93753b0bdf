// Runs the streaming scenario in Node or Deno through `import "vdisk"`, saves the images it
// streamed into the scratch directory (for qemu-img) and prints the report as JSON.
//   node run-stream-scenario.mjs <fixturesDir> <scratchDir>
import * as vdisk from "vdisk";
import { streamScenario } from "./stream-scenario.mjs";

const isDeno = typeof globalThis.Deno !== "undefined";
const args = isDeno ? globalThis.Deno.args : process.argv.slice(2);
const [fixtures, scratch] = args;
if (!fixtures || !scratch) throw new TypeError("usage: run-stream-scenario.mjs <fixturesDir> <scratchDir>");
const writeFile = isDeno
  ? (p, b) => globalThis.Deno.writeFile(p, b)
  : async (p, b) => (await import("node:fs/promises")).writeFile(p, b);

const open = (name) => vdisk.openImage(`${fixtures}/${name}`, { readOnly: true });
const openBlob = async (blob, format) =>
  vdisk.openImage(new vdisk.MemoryBackend(new Uint8Array(await blob.arrayBuffer())), { format, readOnly: true });
const { report, files } = await streamScenario(vdisk, open, openBlob);
for (const [name, bytes] of Object.entries(files)) await writeFile(`${scratch}/${name}`, bytes);
console.log(JSON.stringify({ runtime: isDeno ? "deno" : "node", ...report }));
