/**
 * The VHDX log reader on hand-made logs: the active sequence runs from the head's tail to the
 * head, older and foreign-GUID entries are ignored, entries may wrap around the end of the log,
 * a head whose tail is gone gives way to the newest complete sequence, and with none complete
 * the run of consecutive entries ending at the newest is replayed.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, tsKernel } from "../../src/index.js";
import { vhdxSetChecksum } from "../../src/formats/vhdx/checksum.js";
import type { VhdxHeaderInfo } from "../../src/formats/vhdx/headers.js";
import { readVhdxLog } from "../../src/formats/vhdx/log-replay.js";
import { VhdxLogWriter } from "../../src/formats/vhdx/log-writer.js";

const MiB = 1 << 20;
const LOG = MiB;
const GUID = "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5";

function header(logGuid = GUID): VhdxHeaderInfo {
  return {
    sequenceNumber: 5n,
    fileWriteGuid: GUID,
    dataWriteGuid: GUID,
    logGuid,
    logVersion: 0,
    version: 1,
    logLength: MiB,
    logOffset: LOG,
  };
}

const sector = (fileOffset: number, fill: number) => ({ fileOffset, data: new Uint8Array(4096).fill(fill) });

/** Writes entries through the writer (tail = itself), then optionally rewrites tails. */
async function logWith(
  entries: Array<{ at?: number; sectors: Array<{ fileOffset: number; data: Uint8Array }>; tail?: number; guid?: string }>,
): Promise<{ file: MemoryBackend; positions: number[] }> {
  const file = new MemoryBackend(new Uint8Array(3 * MiB));
  const positions: number[] = [];
  const w = new VhdxLogWriter(LOG, MiB, tsKernel);
  let lastGuid = "";
  for (const e of entries) {
    const guid = e.guid ?? GUID;
    if (guid !== lastGuid) {
      w.reset(guid);
      lastGuid = guid;
    }
    if (e.at !== undefined) (w as unknown as { head: number }).head = e.at;
    positions.push((w as unknown as { head: number }).head);
    await w.write(file, e.sectors, 3 * MiB, 3 * MiB);
  }
  // Patch tails (and fix the checksums) where asked.
  for (let i = 0; i < entries.length; i++) {
    const tail = entries[i].tail;
    if (tail === undefined) continue;
    const pos = positions[i];
    const len = new DataView(file.bytes().buffer, LOG + pos + 8, 4).getUint32(0, true);
    if (pos + len > MiB) throw new Error("test entries must not wrap when patched");
    const entry = file.bytes().subarray(LOG + pos, LOG + pos + len);
    new DataView(entry.buffer, entry.byteOffset + 12, 4).setUint32(0, tail, true);
    vhdxSetChecksum(tsKernel, entry, 4);
  }
  return { file, positions };
}

describe("vhdx log reader", () => {
  it("replays from the head's tail to the head, in order", async () => {
    const { file } = await logWith([
      { sectors: [sector(2 * MiB, 0x11)] },
      { sectors: [sector(2 * MiB + 4096, 0x22), sector(2 * MiB, 0x33)], tail: 0 },
    ]);
    const r = await readVhdxLog(file, tsKernel, header(), 3 * MiB);
    expect(r?.entries).toBe(2);
    expect(r!.patches.map((p) => [p.fileOffset, p.data![0]])).toEqual([
      [2 * MiB, 0x11],
      [2 * MiB + 4096, 0x22],
      [2 * MiB, 0x33],
    ]);
  });

  it("a head whose tail names itself replays alone; older entries are done", async () => {
    const { file } = await logWith([{ sectors: [sector(2 * MiB, 0x11)] }, { sectors: [sector(2 * MiB + 8192, 0x22)] }]);
    const r = await readVhdxLog(file, tsKernel, header(), 3 * MiB);
    expect(r?.entries).toBe(1);
    expect(r!.headSequence).toBe(2n);
    expect(r!.patches.map((p) => p.fileOffset)).toEqual([2 * MiB + 8192]);
  });

  it("entries of another log GUID are ignored; none valid means nothing to replay", async () => {
    const { file } = await logWith([{ sectors: [sector(2 * MiB, 0x11)], guid: "11111111-2222-4333-8444-555555555555" }]);
    expect(await readVhdxLog(file, tsKernel, header(), 3 * MiB)).toBeUndefined();
    expect(await readVhdxLog(file, tsKernel, header("00000000-0000-0000-0000-000000000000"), 3 * MiB)).toBeUndefined();
  });

  it("an entry that wraps around the end of the log reads whole", async () => {
    const { file } = await logWith([{ at: MiB - 4096, sectors: [sector(2 * MiB, 0x44), sector(2 * MiB + 4096, 0x55)] }]);
    const r = await readVhdxLog(file, tsKernel, header(), 3 * MiB);
    expect(r!.patches.map((p) => p.data![100])).toEqual([0x44, 0x55]);
  });

  it("a head whose tail is gone is skipped for the newest complete sequence", async () => {
    const { file } = await logWith([
      { sectors: [sector(2 * MiB, 0x11)] },
      { sectors: [sector(2 * MiB + 4096, 0x22)], tail: 512 * 1024 },
    ]);
    const r = await readVhdxLog(file, tsKernel, header(), 3 * MiB);
    expect(r?.entries).toBe(1);
    expect(r!.headSequence).toBe(1n);
    expect(r!.patches.map((p) => p.data![0])).toEqual([0x11]);
  });

  it("when no head has its tail, the consecutive run ending at the newest entry is replayed (as qemu does)", async () => {
    const { file } = await logWith([
      { sectors: [sector(2 * MiB, 0x11)], tail: 512 * 1024 },
      { sectors: [sector(2 * MiB + 4096, 0x22)], tail: 512 * 1024 },
    ]);
    const r = await readVhdxLog(file, tsKernel, header(), 3 * MiB);
    expect(r?.entries).toBe(2);
    expect(r!.patches.map((p) => p.data![0])).toEqual([0x11, 0x22]);
  });

  it("overlapping entry headers that claim the whole log stop the scan with a limit error", async () => {
    const file = new MemoryBackend(new Uint8Array(3 * MiB));
    const b = file.bytes();
    for (let s = 0; s < MiB; s += 4096) {
      b.set([0x6c, 0x6f, 0x67, 0x65], LOG + s);
      new DataView(b.buffer, LOG + s + 8, 4).setUint32(0, MiB, true);
    }
    await expect(readVhdxLog(file, tsKernel, header(), 3 * MiB)).rejects.toMatchObject({ code: "ERR_LIMIT_EXCEEDED" });
  });
});
