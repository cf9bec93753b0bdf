import { describe, expect, it } from "vitest";
import { enforcePolicy } from "../../src/core/policy.js";
import { MemoryBackend } from "../../src/io/memory.js";
import { parseSize, splitOptionString } from "../../src/core/options.js";

const req = (name: string) => ({ name, relativeTo: new MemoryBackend(), writable: false, purpose: "backing" });

describe("enforcePolicy()", () => {
  it("deny refuses every name with ERR_OPEN_DENIED", () => {
    expect(() => enforcePolicy("deny", req("base.qcow2"))).toThrow(/open policy denies/);
  });
  it("same-dir allows plain relative names and refuses absolute, '..' and protocol names", () => {
    expect(() => enforcePolicy("same-dir", req("base.qcow2"))).not.toThrow();
    expect(() => enforcePolicy("same-dir", req("sub/base.qcow2"))).not.toThrow();
    for (const bad of ["/etc/passwd", "../x.img", "a/../../x", "nbd://host/x", "json:{}", "C:\\x.img"]) {
      expect(() => enforcePolicy("same-dir", req(bad)), bad).toThrow(expect.objectContaining({ code: "ERR_OPEN_DENIED" }));
    }
  });
  it("any allows absolute paths but not protocols", () => {
    expect(() => enforcePolicy("any", req("/var/base.qcow2"))).not.toThrow();
    expect(() => enforcePolicy("any", req("http://x/y"))).toThrow();
  });
});

describe("option parsing", () => {
  it("parseSize() takes qemu-img suffixes", () => {
    expect(parseSize("64M")).toBe(67108864);
    expect(parseSize("1.5k")).toBe(1536);
    expect(parseSize("2G")).toBe(2 ** 31);
    expect(parseSize("512")).toBe(512);
    expect(() => parseSize("12Q")).toThrow(RangeError);
  });
  it("splitOptionString() handles ',,' escapes and bare flags", () => {
    expect(splitOptionString("a=1,b=x,,y,c")).toEqual([["a", "1"], ["b", "x,y"], ["c", "on"]]);
  });
});
