// loadKernel/getKernel/setKernel: lazy, cached, injectable, and falling back to the TS twin.
import { afterEach, describe, expect, it, vi } from "vitest";

afterEach(() => {
  vi.unstubAllGlobals();
  vi.resetModules();
});

async function freshKernelModule() {
  vi.resetModules();
  return import("../../src/kernel/index.js");
}

describe("kernel loader", () => {
  it("getKernel() is the TS twin until loadKernel() resolves, then the cached Wasm kernel", async () => {
    const m = await freshKernelModule();
    expect(m.getKernel().kind).toBe("ts");
    const first = await m.loadKernel();
    expect(first.kind).toBe("wasm");
    expect(await m.loadKernel()).toBe(first);
    expect(m.getKernel()).toBe(first);
  });

  it("loadKernel() accepts a precompiled module", async () => {
    const m = await freshKernelModule();
    const module = await WebAssembly.compile(m.kernelWasmBytes());
    const k = await m.loadKernel(module);
    expect(k.kind).toBe("wasm");
    const buf = k.allocBuffer(64);
    buf.fill(0);
    buf[40] = 1;
    expect(k.findNonZero(buf, 0, 64)).toBe(40);
  });

  it("compileKernelModule() compiles once", async () => {
    const m = await freshKernelModule();
    const a = m.compileKernelModule();
    expect(m.compileKernelModule()).toBe(a);
    expect(WebAssembly.Module.exports(await a).map((e) => e.name)).toContain("findNonZero");
  });

  it("instantiateWasmKernel() rejects a module that is not the kernel", async () => {
    const m = await freshKernelModule();
    // The smallest valid module: magic and version only, no exports.
    const empty = await WebAssembly.compile(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await expect(m.instantiateWasmKernel(empty)).rejects.toThrow(/lacks export findNonZero/);
  });

  it("loadKernel() falls back to the TS twin without WebAssembly", async () => {
    vi.stubGlobal("WebAssembly", undefined);
    const m = await freshKernelModule();
    expect((await m.loadKernel()).kind).toBe("ts");
    expect(m.getKernel()).toBe(m.tsKernel);
  });

  it("loadKernel() falls back to the TS twin when instantiation fails", async () => {
    const m = await freshKernelModule();
    const empty = await WebAssembly.compile(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    expect(await m.loadKernel(empty)).toBe(m.tsKernel);
  });

  it("setKernel() wins over the loaded kernel, and undefined restores the default", async () => {
    const m = await freshKernelModule();
    const wasm = await m.loadKernel();
    m.setKernel(m.tsKernel);
    expect(m.getKernel()).toBe(m.tsKernel);
    expect(await m.loadKernel()).toBe(m.tsKernel);
    m.setKernel(undefined);
    expect(m.getKernel()).toBe(wasm);
  });
});
