/**
 * The engine's write lifecycle: `beginWrites` once before the first change after open or a
 * completed flush, shared by concurrent first changes, retried after a failure, never on a
 * read-only device, and before data the engine writes straight into mapped host space.
 */
import { describe, expect, it } from "vitest";
import { ImageDevice } from "../../src/core/image-device.js";
import { MemoryBackend } from "../../src/io/memory.js";
import { createImage } from "../../src/index.js";
import { tsKernel } from "../../src/kernel/ts-kernel.js";
import { ToyInstance } from "./toy-format.js";

const UNIT = 4096;

function device(readOnly = false): { toy: ToyInstance; dev: ImageDevice } {
  const toy = new ToyInstance(16 * UNIT, UNIT);
  // Record host writes, so the order against `begin` is visible.
  const write = toy.file.write.bind(toy.file);
  toy.file.write = (offset: number, data: Uint8Array) => {
    toy.events.push("host-write");
    return write(offset, data);
  };
  return { toy, dev: new ImageDevice(toy, { readOnly, kernel: tsKernel, name: "toy" }) };
}

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

describe("write lifecycle", () => {
  it("concurrent first writes call beginWrites once, and all wait for it", async () => {
    const { toy, dev } = device();
    let open!: () => void;
    toy.beginGate = new Promise((r) => (open = r));
    const writes = [0, 1, 2, 3].map((i) => dev.write(i * UNIT, fill(UNIT, i + 1)));
    await new Promise((r) => setTimeout(r, 20));
    // Nothing reached the instance or the file while beginWrites was pending.
    expect(toy.events).toEqual(["begin"]);
    open();
    await Promise.all(writes);
    expect(toy.beginCalls).toBe(1);
    expect(toy.events[0]).toBe("begin");
    expect(toy.events.filter((e) => e === "begin")).toHaveLength(1);
    for (let i = 0; i < 4; i++) expect((await dev.read(i * UNIT, UNIT))[0]).toBe(i + 1);
  });

  it("is called again after a completed flush, not after a flush with nothing written", async () => {
    const { toy, dev } = device();
    await dev.flush();
    expect(toy.beginCalls).toBe(0);
    await dev.write(0, fill(100, 1));
    await dev.write(UNIT, fill(100, 2));
    expect(toy.beginCalls).toBe(1);
    await dev.flush();
    // An overwrite in place (no allocation: the engine writes the mapped host bytes itself)
    // still starts a new session first.
    toy.events.length = 0;
    await dev.write(10, fill(10, 3));
    expect(toy.events).toEqual(["begin", "host-write"]);
    expect(toy.beginCalls).toBe(2);
    await dev.write(20, fill(10, 4));
    expect(toy.beginCalls).toBe(2);
    await dev.flush();
    await dev.flush();
    expect(toy.beginCalls).toBe(2);
  });

  it("every kind of change starts a session when the device is clean", async () => {
    const { toy, dev } = device();
    const changes: Array<[string, () => Promise<unknown>]> = [
      ["write", () => dev.write(0, fill(10, 1))],
      ["writeZeroes", () => dev.writeZeroes(0, UNIT)],
      ["discard", () => dev.discard(0, UNIT)],
      ["writeCompressed", () => dev.writeCompressed(UNIT, fill(UNIT, 2))],
      ["resize", () => dev.resize(32 * UNIT)],
      ["setBacking", () => dev.setBacking({ name: "other" })],
      ["makeEmpty", () => dev.makeEmpty()],
    ];
    toy.setBacking = async () => void toy.events.push("set-backing");
    toy.makeEmpty = async () => void toy.events.push("make-empty");
    for (const [name, change] of changes) {
      const before = toy.beginCalls;
      toy.events.length = 0;
      await change();
      expect(toy.beginCalls, name).toBe(before + 1);
      expect(toy.events[0], name).toBe("begin");
      await dev.flush();
    }
  });

  it("checks, repairing or not, leave the lifecycle to the driver", async () => {
    const { toy, dev } = device();
    let checks = 0;
    toy.check = async () => {
      checks++;
      return { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
    };
    await dev.check();
    expect(toy.beginCalls).toBe(0);
    await dev.check("all");
    expect(toy.beginCalls).toBe(0);
    expect(checks).toBe(2);
    await dev.write(0, fill(1, 1));
    expect(toy.beginCalls).toBe(1);
  });

  it("is never called on a read-only device", async () => {
    const { toy, dev } = device(true);
    toy.check = async () => ({ corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] });
    await expect(dev.write(0, fill(10, 1))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(dev.writeZeroes(0, UNIT)).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(dev.discard(0, UNIT)).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(dev.writeCompressed(0, fill(UNIT, 1))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(dev.resize(UNIT)).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(dev.check("leaks")).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await dev.read(0, 16 * UNIT);
    for await (const e of dev.extents()) void e;
    await dev.check();
    await dev.info();
    await dev.flush();
    await dev.close();
    expect(toy.beginCalls).toBe(0);
    expect(toy.events).toEqual(["flush"]);
  });

  it("a rejected beginWrites fails the waiting writes; the next write tries again", async () => {
    const { toy, dev } = device();
    const boom = new Error("cannot mark the image");
    toy.failBegin = boom;
    const a = dev.write(0, fill(10, 1));
    const b = dev.write(UNIT, fill(10, 2));
    await expect(a).rejects.toBe(boom);
    await expect(b).rejects.toBe(boom);
    expect(toy.beginCalls).toBe(1);
    expect(toy.events).toEqual(["begin"]);
    await dev.write(0, fill(10, 3));
    expect(toy.beginCalls).toBe(2);
    expect((await dev.read(0, 1))[0]).toBe(3);
    await dev.write(UNIT, fill(10, 4));
    expect(toy.beginCalls).toBe(2);
  });

  it("argument errors do not start a session", async () => {
    const { toy, dev } = device();
    await expect(dev.write(16 * UNIT, fill(1, 1))).rejects.toThrow(RangeError);
    await expect(dev.writeZeroes(-1, 1)).rejects.toThrow(RangeError);
    await expect(dev.resize(-1)).rejects.toThrow(RangeError);
    expect(toy.beginCalls).toBe(0);
  });

  it("copy-on-read starts a session before it copies; a read that copies nothing does not", async () => {
    const base = await createImage(new MemoryBackend(), { format: "raw", size: 16 * UNIT });
    await base.write(0, fill(16 * UNIT, 7));
    class CorToy extends ToyInstance {
      readonly copyOnRead = true;
    }
    const toy = new CorToy(16 * UNIT, UNIT, { name: "base" });
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, backing: base, name: "toy" });
    await dev.write(0, fill(UNIT, 1));
    await dev.flush();
    await dev.read(0, UNIT); // allocated: nothing to copy
    expect(toy.beginCalls).toBe(1);
    toy.events.length = 0;
    expect((await dev.read(2 * UNIT, 10))[0]).toBe(7);
    expect(toy.events.slice(0, 2)).toEqual(["begin", "allocate"]);
    expect(toy.beginCalls).toBe(2);
    expect(toy.map.has(2)).toBe(true);
  });
});
