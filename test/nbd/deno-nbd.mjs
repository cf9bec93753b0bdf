// Run by deno-nbd.test.ts in Deno:  deno run … deno-nbd.mjs <url served by Node> <scratch dir>
// Reads a Node-served export through openImage(url) (Deno.connect), then serves a memory image
// itself (Deno.listen, TCP and Unix) and reads and writes it as a client. Prints a JSON report.
import * as vdisk from "vdisk";

const [remoteUrl, scratch] = Deno.args;
const sum = (bytes) => {
  let h = 0;
  for (let i = 0; i < bytes.length; i++) h = (Math.imul(h, 31) + bytes[i]) >>> 0;
  return h;
};

const remote = await vdisk.openImage(remoteUrl, { format: "raw", readOnly: true });
const remoteBytes = await remote.read(0, remote.size);
await remote.close();

const image = new Uint8Array(1 << 20).map((_, i) => (i * 3) & 0xff);
const device = await vdisk.openImage(new vdisk.MemoryBackend(image), { format: "raw" });
const results = {};
for (const [kind, listen] of [["tcp", { host: "127.0.0.1", port: 0 }], ["unix", { path: `${scratch}/deno.sock` }]]) {
  const handle = await vdisk.serveNbd({ d: device }, { listen, maxConnections: 2 });
  const client = await vdisk.openImage(handle.urls[0], { format: "raw" });
  const before = await client.read(4096, 4096);
  await client.write(8192, new Uint8Array(4096).fill(kind === "tcp" ? 0xaa : 0xbb));
  await client.flush();
  const after = await device.read(8192, 4096);
  await client.close();
  await handle.close();
  results[kind] = { url: handle.urls[0], readOk: before.every((b, i) => b === ((4096 + i) * 3 & 0xff)), written: after[0] };
}
await device.close();
console.log(JSON.stringify({ remoteSize: remoteBytes.length, remoteSum: sum(remoteBytes), ...results }));
