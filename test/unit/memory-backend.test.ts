// MemoryBackend's buffer contract: the initial bytes are kept (not copied), and bytes() is always
// a view of an ArrayBuffer, which Blob accepts (TypeScript 5.7+ refuses a Uint8Array<ArrayBufferLike>).
import { describe, expect, it } from "vitest";
import { MemoryBackend } from "../../src/io/memory.js";

describe("MemoryBackend", () => {
  it("keeps the initial bytes: a write lands in the caller's array while it fits", async () => {
    const initial = new Uint8Array(8);
    const io = new MemoryBackend(initial);
    await io.write(2, new Uint8Array([7, 9]));
    expect(Array.from(initial)).toEqual([0, 0, 7, 9, 0, 0, 0, 0]);
    expect(io.bytes().buffer).toBe(initial.buffer);
  });

  it("bytes() is a view of an ArrayBuffer, even for a SharedArrayBuffer start, and goes into a Blob", async () => {
    const shared = new Uint8Array(new SharedArrayBuffer(4));
    shared.set([1, 2, 3, 4]);
    const io = new MemoryBackend(shared);
    const bytes: Uint8Array<ArrayBuffer> = io.bytes();
    expect(bytes.buffer).toBeInstanceOf(ArrayBuffer);
    expect(Array.from(bytes)).toEqual([1, 2, 3, 4]);
    const empty = new MemoryBackend();
    await empty.write(0, new Uint8Array([5, 6]));
    const blob = new Blob([empty.bytes(), io.bytes()]);
    expect(Array.from(new Uint8Array(await blob.arrayBuffer()))).toEqual([5, 6, 1, 2, 3, 4]);
  });
});
