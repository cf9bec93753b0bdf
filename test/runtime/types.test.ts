// The package's declarations as TypeScript users get them: the tarball `npm pack` makes (exactly
// the files a user installs) unpacked into a node_modules/vdisk, and small consumer projects
// beside it, each type-checked by tsc with `skipLibCheck: false` so that vdisk's own .d.ts files
// are checked against the consumer's libraries too. One pack per run; the projects share it.
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { typeCheckProject } from "../helpers/type-check.js";
import { ROOT, findDeno, requireDist } from "./tools.js";

const deno = findDeno();

let work = "";

beforeAll(() => {
  requireDist("node.d.ts", "browser.d.ts", "index.d.ts", "vdisk.browser.js", "vdisk.browser.d.ts");
  work = mkdtempSync(join(tmpdir(), "vdisk-types-"));
  // --ignore-scripts: dist/ is already built; `prepare` would rebuild it under the other tests.
  execFileSync("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", work], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack left no tarball in ${work}`);
  const pkg = join(work, "node_modules", "vdisk");
  mkdirSync(pkg, { recursive: true });
  execFileSync("tar", ["-xzf", join(work, tarball), "-C", pkg, "--strip-components=1"]);
  // The one ambient package the Node projects name in `types`; vdisk's declarations import none.
  mkdirSync(join(work, "node_modules", "@types"));
  symlinkSync(join(ROOT, "node_modules", "@types", "node"), join(work, "node_modules", "@types", "node"), "dir");
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * Type-checks `sources` (file name → text) as a new ESM project beside the unpacked package and
 * returns tsc's diagnostics ("" when it compiles). `// @ts-expect-error` lines in a source prove
 * what must be refused: an unneeded one is itself an error (TS2578). TypeScript's own lib files
 * are not re-checked (skipDefaultLibCheck, to save time); every other .d.ts is.
 */
async function typeCheck(
  name: string,
  sources: Record<string, string>,
  compilerOptions: Record<string, unknown>,
): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true, type: "module" }));
  for (const [file, text] of Object.entries(sources)) writeFileSync(join(dir, file), text);
  const options = { strict: true, noEmit: true, target: "ES2022", skipLibCheck: false, skipDefaultLibCheck: true };
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { ...options, ...compilerOptions }, files: Object.keys(sources) }),
  );
  return typeCheckProject(dir);
}

/** A web page as README shows it: a File from an <input>, an image made in memory. */
const WEB_PAGE = `import { openImage, createImage, convertImage, BlobBackend, MemoryBackend } from "vdisk";
import type { BlockDevice } from "vdisk";
const input = document.querySelector<HTMLInputElement>("input[type=file]")!;
input.onchange = async () => {
  const file: File = input.files![0]!;
  const img: BlockDevice = await openImage(file); // a File, opened read-only
  for await (const e of img.extents()) console.log(e.offset, e.length, e.data, e.zero);
  await img.close();
  const made = await createImage({ format: "qcow2", size: 1 << 30 }); // in memory
  await made.write(0, new Uint8Array(4096));
  const controller = new AbortController();
  const bar = document.querySelector("progress")!;
  const stats = await convertImage(await openImage(file), made, {
    signal: controller.signal,
    onProgress: ({ done, total }) => (bar.value = done / total),
  });
  console.log(stats.dataBytes, made.capabilities.compress);
  await made.close();
  const mem = new MemoryBackend();
  await (await createImage(mem, { format: "raw", size: 65536 })).close();
  const url = URL.createObjectURL(new Blob([mem.bytes().slice()]));
  console.log(url, new BlobBackend(file).size);
};
// @ts-expect-error a path is no image source in a page
await openImage("disk.qcow2");
`;

/** A Node script as README shows it. */
const NODE_SCRIPT = `import { openImage, createImage, convertImage, NodeFileBackend } from "vdisk";
import { loadKernel, compileKernelModule } from "vdisk";
const img = await openImage("disk.qcow2", { readOnly: true, backing: "same-dir" });
console.log(img.format, img.size, await img.read(0, 512));
for await (const e of img.extents()) console.log(e.offset, e.length, e.data, e.zero);
await img.close();
const out = await createImage("new.qcow2", { format: "qcow2", size: 1 << 30, options: "cluster_size=64k" });
await out.write(0, new Uint8Array(4096).fill(0xab));
await out.flush();
await out.close();
const io = await NodeFileBackend.open("disk.raw", { blocking: true });
await (await openImage(io, { format: "raw" })).close();
const src = await openImage("disk.qcow2", { readOnly: true });
const dst = await createImage("disk.vhdx", { format: "vhdx", size: src.size });
await convertImage(src, dst, { signal: AbortSignal.timeout(60_000), onProgress: (p) => console.log(p.done, p.total) });
const kernel = await loadKernel(await compileKernelModule());
console.log(kernel.kind, Buffer.byteLength("x"));
`;

/** The first fenced code block after the paragraph starting with `**title**` in README.md. */
function readmeExample(title: string): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf(`\n**${title}**`);
  if (at < 0) throw new Error(`README.md has no **${title}** example`);
  const block = /```(?:js|ts)\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error(`README.md's **${title}** paragraph has no code block`);
  return `${block[1]}export {};\n`;
}

/** The page elements README's browser example uses without defining them. */
const PAGE_ELEMENTS = `declare const input: HTMLInputElement & { files: FileList };
declare const cancelButton: HTMLButtonElement;
declare const bar: HTMLProgressElement;
`;

const WEB_LIBS = ["ES2022", "DOM", "DOM.Iterable"];
const viaBundle = (source: string) => source.replaceAll('from "vdisk"', 'from "vdisk/vdisk.browser.js"');

// Concurrent: each check is a separate tsc process. A tsc run takes seconds, more on a busy machine.
describe.concurrent("TypeScript consumers of the packed package", { timeout: 240_000 }, () => {
  const web = "a web project (bundler resolution, no customConditions) sees the browser surface, vdisk.browser.js too";
  it(web, async () => {
    const out = await typeCheck(
      "web-bundler",
      {
        "main.ts": WEB_PAGE,
        "bundle.ts": viaBundle(WEB_PAGE),
        "readme.ts": PAGE_ELEMENTS + readmeExample("Browser"),
      },
      { module: "esnext", moduleResolution: "bundler", lib: WEB_LIBS, types: [] },
    );
    expect(out).toBe("");
  });

  const node = "a Node project (NodeNext, ES2022 + Node types, no DOM) sees the Node surface; no DOM, no WebAssembly";
  it(node, async () => {
    const source = `${NODE_SCRIPT}// @ts-expect-error this project has no DOM: the check would not see a leak if it had
document.title = "";
// @ts-expect-error a Blob is no image source in Node
await openImage(new Blob([]));
`;
    const out = await typeCheck(
      "node-nodenext",
      { "main.ts": source, "readme.ts": readmeExample("Node") },
      { module: "nodenext", moduleResolution: "nodenext", lib: ["ES2022"], types: ["node"] },
    );
    expect(out).toBe("");
  });

  it("a Node project with bundler resolution gets the Node surface with customConditions: ['node']", async () => {
    const out = await typeCheck(
      "node-bundler",
      { "main.ts": NODE_SCRIPT },
      { module: "esnext", moduleResolution: "bundler", customConditions: ["node"], lib: ["ES2022"], types: ["node"] },
    );
    expect(out).toBe("");
  });

  it("a page importing vdisk/vdisk.browser.js under NodeNext resolution gets the browser declarations", async () => {
    const out = await typeCheck(
      "bundle-nodenext",
      { "main.ts": viaBundle(WEB_PAGE) },
      { module: "nodenext", moduleResolution: "nodenext", lib: WEB_LIBS, types: [] },
    );
    expect(out).toBe("");
  });

  it.skipIf(!deno)("a Deno project (deno check, the package in node_modules) sees the Deno surface", async () => {
    const dir = join(work, "deno");
    mkdirSync(dir);
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", dependencies: { vdisk: "*" } }));
    writeFileSync(
      join(dir, "main.ts"),
      `import { openImage, createImage, convertImage, DenoFileBackend } from "vdisk";
const src = await openImage("disk.qcow2", { readOnly: true });
const dst = await createImage("disk.vmdk", { format: "vmdk", size: src.size });
await convertImage(src, dst, { onProgress: (p) => console.log(p.done, p.total) });
await dst.close();
await (await DenoFileBackend.open("disk.raw", { readOnly: true })).close();
// @ts-expect-error a Blob is no image source in Deno
await openImage(new Blob([]));
`,
    );
    const env = { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
    const args = ["check", "--no-lock", "--quiet", "--node-modules-dir=manual", "main.ts"];
    const out = await promisify(execFile)(deno!, args, { cwd: dir, env, encoding: "utf8" }).then(
      (r) => r.stdout + r.stderr,
      (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}`,
    );
    expect(out).toBe("");
  });
});
