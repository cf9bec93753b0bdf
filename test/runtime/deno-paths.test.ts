import { describe, expect, it } from "vitest";
import { dirnamePath, isAbsolutePath, normalizePath, resolveBeside } from "../../src/adapters/deno/paths.js";

describe("Deno adapter paths", () => {
  it("resolveBeside() puts a relative backing name next to the image", () => {
    expect(resolveBeside("/home/u", "/srv/img/top.qcow2", "base.raw")).toBe("/srv/img/base.raw");
    expect(resolveBeside("/home/u", "img/top.qcow2", "base.raw")).toBe("/home/u/img/base.raw");
    expect(resolveBeside("/home/u", "top.qcow2", "../b/base.raw")).toBe("/home/b/base.raw");
    expect(resolveBeside("/home/u", "img/./top.qcow2", "./x//base.raw")).toBe("/home/u/img/x/base.raw");
  });

  it("resolveBeside() keeps an absolute backing name", () => {
    expect(resolveBeside("/home/u", "/srv/top.qcow2", "/data/base.raw")).toBe("/data/base.raw");
    expect(resolveBeside("C:\\work", "C:\\img\\top.vhdx", "base.vhdx")).toBe("C:/img/base.vhdx");
  });

  it("normalizePath() folds '..' but never above the root", () => {
    expect(normalizePath("/a/b/../../../c")).toBe("/c");
    expect(normalizePath("a/../../c")).toBe("../c");
    expect(normalizePath("./")).toBe(".");
    expect(normalizePath("/")).toBe("/");
  });

  it("dirnamePath() and isAbsolutePath() handle both separators", () => {
    expect(dirnamePath("/x")).toBe("/");
    expect(dirnamePath("x")).toBe(".");
    expect(dirnamePath("a\\b\\c")).toBe("a\\b");
    expect(isAbsolutePath("\\\\server\\share")).toBe(true);
    expect(isAbsolutePath("d:/x")).toBe(true);
    expect(isAbsolutePath("d:x")).toBe(false);
    expect(isAbsolutePath("x/y")).toBe(false);
  });
});
