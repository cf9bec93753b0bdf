// The streaming scenario, run unchanged in Node, Deno and Chromium: pattern.raw converted to
// qcow2 into a WritableStream that hashes what it receives, to a streamOptimized VMDK Blob
// (convertToBlob), read back through deviceStream, and aborted half-way. Returns a JSON report
// plus the bytes written, which the Node/Deno runner saves for qemu-img. Plain JS on purpose.
import { sha256Hex } from "./scenario.mjs";

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A WritableStream that keeps what it receives and hashes it once closed. */
function hashingSink() {
  const parts = [];
  const state = { closed: false, sha256: undefined, bytes: undefined };
  const stream = new WritableStream({
    write(chunk) {
      parts.push(chunk.slice());
    },
    async close() {
      state.bytes = concat(parts);
      state.sha256 = await sha256Hex(state.bytes);
      state.closed = true;
    },
  });
  return { stream, state };
}

async function guestSha(img) {
  try {
    return await sha256Hex(await img.read(0, img.size));
  } finally {
    await img.close();
  }
}

/**
 * Runs the scenario. `open(name)` opens a fixture; `openBlob(blob, format)` opens a Blob as an
 * image (the browser's openImage(blob); elsewhere through a MemoryBackend of its bytes).
 */
export async function streamScenario(vdisk, open, openBlob) {
  const src = await open("pattern.raw");
  try {
    const sourceSha256 = await sha256Hex(await src.read(0, src.size));

    const sink = hashingSink();
    const progress = [];
    const result = await vdisk.convertToStream(src, sink.stream, {
      format: "qcow2",
      onProgress: (p) => progress.push([p.done, p.total]),
    });
    const qcow2Guest = await guestSha(await vdisk.openImage(new vdisk.MemoryBackend(sink.state.bytes), { format: "qcow2", readOnly: true }));

    const blob = await vdisk.convertToBlob(src, { format: "vmdk", options: { subformat: "streamOptimized" } });
    const vmdkBytes = new Uint8Array(await blob.arrayBuffer());
    const vmdkGuest = await guestSha(await openBlob(blob, "vmdk"));

    const streamed = [];
    for await (const chunk of vdisk.deviceStream(src, { chunkSize: 100000 })) streamed.push(chunk);
    const deviceStreamSha256 = await sha256Hex(concat(streamed));

    // Aborted when the sink has taken its first chunk: the run rejects, the sink is aborted.
    const ac = new AbortController();
    let sinkAbort;
    const aborting = new WritableStream({
      write() {
        ac.abort();
      },
      abort(reason) {
        sinkAbort = reason;
      },
    });
    let runError;
    try {
      await vdisk.convertToStream(src, aborting, { format: "qcow2", sparseSize: 0, signal: ac.signal });
    } catch (e) {
      runError = e;
    }
    await new Promise((r) => setTimeout(r, 10));

    const dones = progress.map((p) => p[0]);
    return {
      report: {
        sourceSha256,
        qcow2: {
          bytesWritten: result.bytesWritten,
          received: sink.state.bytes.length,
          closed: sink.state.closed,
          sha256: sink.state.sha256,
          guestSha256: qcow2Guest,
          progressMonotonic: dones.every((d, i) => i === 0 || d >= dones[i - 1]),
          progressFirst: progress[0],
          progressLast: progress[progress.length - 1],
        },
        vmdk: { blobSize: blob.size, guestSha256: vmdkGuest },
        deviceStreamSha256,
        abort: { runError: runError?.name, sinkAbort: sinkAbort?.name },
      },
      files: { "streamed.qcow2": sink.state.bytes, "blob.vmdk": vmdkBytes },
    };
  } finally {
    await src.close();
  }
}
