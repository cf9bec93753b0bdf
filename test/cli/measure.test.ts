/**
 * `vdisk measure` against qemu-img 7.2 on the same inputs: the same text, JSON, messages and
 * exit codes, for raw and qcow2 targets (the formats qemu-img can measure).
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk measure comparisons with qemu-img");

describe.skipIf(!HAVE_QEMU)("vdisk measure matches qemu-img measure", () => {
  const t = tempDir("vdisk-cli-measure-");
  const io = (file: string, ...commands: string[]): void => {
    const args = ["-f", "qcow2"];
    for (const c of commands) args.push("-c", c);
    qemu("qemu-io", [...args, t.path(file)]);
  };
  beforeAll(() => {
    // A fully written raw file (vdisk cannot see a raw file's holes, qemu-img can).
    writeFileSync(t.path("full.raw"), new Uint8Array((1 << 20) + 1000).map((_, i) => (i * 31 + 7) & 0xff));
    qemuImg("create", "-q", "-f", "qcow2", t.path("empty.qcow2"), "10M");
    // Data at unaligned offsets, a zeroed range, a discarded range, data past 4 GiB.
    qemuImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", t.path("holes.qcow2"), "5G");
    io("holes.qcow2", "write -P 0xab 1000 70k", "write -z 1M 256k", "write -P 1 3M 8k", "discard 3M 4k",
      "write -P 2 200M 1", "write -P 3 4G 130k", "write -z 4200M 2M");
    // A backing chain: data in the base, the top and both.
    qemuImg("create", "-q", "-f", "qcow2", t.path("base.qcow2"), "64M");
    io("base.qcow2", "write -P 0xab 0 64k", "write -z 1M 64k", "write -P 0x11 2M 128k", "write -P 5 40M 1M");
    qemuImg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", t.path("top.qcow2"));
    io("top.qcow2", "write -P 0x22 64k 64k", "write -z 40M 512k", "write -P 7 50M 3k");
    qemuImg("convert", "-c", "-O", "qcow2", t.path("top.qcow2"), t.path("compressed.qcow2"));
    // Subclusters: allocation finer than the source's clusters, under a chain with 4 KiB clusters.
    qemuImg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", t.path("ext.qcow2"), "30M");
    io("ext.qcow2", "write -P 1 4k 4k", "write -P 2 1M 1k", "write -z 2M 128k", "write -P 3 2M 4k", "write -P 4 5M 300k",
      "discard 5M 64k");
    qemuImg("create", "-q", "-f", "qcow2", "-b", "ext.qcow2", "-F", "qcow2", "-o", "cluster_size=4k", t.path("ext-top.qcow2"));
    io("ext-top.qcow2", "write -z 5M 128k", "write -P 9 20M 2k");
    qemuImg("create", "-q", "-f", "qcow2", "-o", "compat=0.10", t.path("v2.qcow2"), "3M");
    io("v2.qcow2", "write -P 9 512 1k");
    // The same data in every format qemu-img reports the allocation of (its vhdx driver reports
    // every block as data, so vhdx sources differ: vdisk counts only the blocks present).
    for (const [format, opts] of [["vmdk", ""], ["vmdk", "subformat=streamOptimized"], ["vdi", ""], ["vpc", ""], ["qed", ""], ["parallels", ""], ["qcow", ""]]) {
      const name = `chain-${format}${opts ? "-stream" : ""}.${format}`;
      qemuImg("convert", "-O", format, ...(opts ? ["-o", opts] : []), t.path("top.qcow2"), t.path(name));
    }
    qemuImg("create", "-q", "-f", "qcow2", t.path("bitmaps.qcow2"), "100M");
    qemuImg("bitmap", "--add", t.path("bitmaps.qcow2"), "b0");
    qemuImg("bitmap", "--add", "-g", "512", t.path("bitmaps.qcow2"), "a-longer-bitmap-name");
    qemuImg("bitmap", "--add", "-g", "2M", t.path("bitmaps.qcow2"), "x");
  });
  afterAll(() => t.cleanup());

  const same = async (args: string[]): Promise<void> => {
    await inDir(t.dir, async () => {
      const ours = await vdisk("measure", ...args);
      const ref = qemu("qemu-img", ["measure", ...args], t.dir);
      const what = `measure ${args.join(" ")}`;
      expect(neutral(ours.stderr), what).toBe(neutral(ref.stderr));
      expect(ours.stdout, what).toBe(ref.stdout);
      expect(ours.status, what).toBe(ref.status);
    });
  };

  it("refuses bad combinations with qemu-img's messages and exit codes", async () => {
    await same([]);
    await same(["-O", "qcow2"]);
    await same(["-O", "qcow2", "--size", "1G", "empty.qcow2"]);
    await same(["-O", "qcow2", "full.raw", "empty.qcow2"]);
    await same(["-f", "raw", "--size", "1G"]);
    await same(["-O", "foo", "--size", "1G"]);
    await same(["-O", "", "--size", "1G"]);
    await same(["-O", "foo", "empty.qcow2"]);
    await same(["-O", "qcow2", "-o", "help"]);
    await same(["-O", "qcow2", "-o", "help", "--size", "1G"]);
    await same(["-O", "raw", "-o", "?", "--size", "1G"]);
    await same(["-O", "qcow2", "--output=xml", "--size", "1G"]);
    await same(["-O", "qcow2", "--size", "abc"]);
    await same(["-O", "qcow2", "--size", "-5"]);
    await same(["-O", "qcow2", "--size", "1G", "-f", "vmdk", "empty.qcow2"]);
  });

  it("--image-opts and --object as qemu-img takes them", async () => {
    await same(["-O", "qcow2", "--image-opts", "driver=qcow2,file.filename=empty.qcow2"]);
    await same(["-O", "qcow2", "--image-opts", "file.filename=holes.qcow2"]);
    await same(["-O", "qcow2", "--image-opts", "driver=raw,file.filename=full.raw"]);
    await same(["-O", "qcow2", "--image-opts", "driver=qcow2,file.driver=file,file.filename=top.qcow2"]);
    await same(["-O", "qcow2", "--image-opts", "driver=qcow2,file.filename=nonexist.qcow2"]);
    await same(["-O", "qcow2", "--image-opts", "driver=qcow2,file.filename=empty.qcow2,bogus=1"]);
    await same(["-O", "qcow2", "--image-opts", "empty.qcow2"]);
    await same(["-O", "qcow2", "--image-opts", "-f", "qcow2", "driver=qcow2,file.filename=empty.qcow2"]);
    await same(["-O", "qcow2", "--image-opts", "--size", "1G"]);
    await same(["-O", "qcow2", "--image-opts", "driver=qcow2,file.filename=empty.qcow2", "--size", "1G"]);
    await same(["-O", "qcow2", "--object", "secret,id=s0,data=x", "--size", "1G"]);
    await same(["-O", "qcow2", "--object", "qom-type=secret,id=s0,data=x", "--size", "1G"]);
    await same(["-O", "qcow2", "--object", "secret,data=x", "--size", "1G"]);
    await same(["-O", "qcow2", "--object", "secret,id=s0", "--size", "1G"]);
    await same(["-O", "qcow2", "--object", "foo,id=x", "--size", "1G"]);
  });

  it("fails on a missing file with exit code 1", async () => {
    await inDir(t.dir, async () => {
      const ours = await vdisk("measure", "-O", "qcow2", "nonexist.qcow2");
      expect(qemu("qemu-img", ["measure", "-O", "qcow2", "nonexist.qcow2"], t.dir).status).toBe(1);
      expect(ours.status).toBe(1);
      expect(ours.stderr).toMatch(/^vdisk: Could not open 'nonexist.qcow2': .*No such file or directory\n$/);
      expect(ours.stdout).toBe("");
    });
  });

  it("refuses bad options as qemu-img does", async () => {
    for (const o of [
      "bogus=1",
      "cluster_size=3k",
      "cluster_size=0",
      "cluster_size=4M",
      "cluster_size=abc",
      "compat=9",
      "compat=v3",
      "refcount_bits=3",
      "refcount_bits=128",
      "refcount_bits=abc",
      "compat=0.10,refcount_bits=8",
      "extended_l2=on,cluster_size=4k",
      "extended_l2=maybe",
      "preallocation=bad",
      "size=abc",
      "extended_l2=on,cluster_size=4k,preallocation=bad",
      "compat=9,cluster_size=3k",
    ]) {
      await same(["-O", "qcow2", "-o", o, "--size", "1G"]);
    }
    await same(["-O", "raw", "-o", "bogus=1", "--size", "1G"]);
    // (Sizes from 2^53 on are beyond vdisk's byte counts: it refuses them as too large.)
    await same(["-O", "qcow2", "--size", "7P"]);
    await same(["-O", "qcow2", "-o", "cluster_size=512", "--size", "10T"]);
  });

  it("figures for a size alone: every cluster size, compat, refcount width, extended L2, preallocation", async () => {
    for (const size of ["0", "1", "1000", "64k", "1G", "1000000007", "300G", "17T"]) {
      await same(["-O", "raw", "--size", size]);
      await same(["--output=json", "-O", "qcow2", "--size", size]);
    }
    for (const cs of ["512", "4k", "16k", "64k", "256k", "2M"]) {
      for (const extra of ["", ",refcount_bits=1", ",refcount_bits=64", ",compat=0.10", ",extended_l2=on", ",preallocation=full"]) {
        if (extra === ",extended_l2=on" && (cs === "512" || cs === "4k")) continue;
        for (const size of ["0", "3M", "100G"]) {
          await same(["-O", "qcow2", "-o", `cluster_size=${cs}${extra}`, "--size", size]);
        }
      }
    }
    await same(["-O", "qcow2", "-o", "preallocation=metadata,lazy_refcounts=on", "--size", "5G"]);
    await same(["-O", "qcow2", "-o", "preallocation=falloc", "-o", "cluster_size=1M", "--size", "5G"]);
    await same(["-O", "qcow2", "-o", "size=5M", "--size", "1G"]);
    await same(["-O", "qcow2", "-o", "backing_file=empty.qcow2,backing_fmt=qcow2", "--size", "1G"]);
    await same(["--output", "json", "-O", "raw", "-o", "preallocation=full", "--size=7G"]);
  });

  it("figures for a source: holes, zero ranges, backing chains, compressed clusters, bitmaps", async () => {
    const sources = ["full.raw", "empty.qcow2", "holes.qcow2", "base.qcow2", "top.qcow2", "compressed.qcow2", "v2.qcow2", "bitmaps.qcow2",
      "ext.qcow2", "ext-top.qcow2"];
    for (const src of sources) {
      await same(["-O", "raw", src]);
      await same(["--output=json", "-O", "qcow2", src]);
      for (const o of ["cluster_size=512", "cluster_size=4k", "cluster_size=2M", "extended_l2=on", "compat=0.10", "refcount_bits=2"]) {
        await same(["-O", "qcow2", "-o", o, src]);
      }
      await same(["-O", "qcow2", "-o", "backing_file=base.qcow2", src]);
      await same(["-O", "qcow2", "-o", "preallocation=full", src]);
      await same(["-O", "qcow2", "-o", "preallocation=metadata,cluster_size=8k", src]);
    }
    await same(["-O", "qcow2", "-f", "raw", "full.raw"]);
    for (const src of ["chain-vmdk.vmdk", "chain-vmdk-stream.vmdk", "chain-vdi.vdi", "chain-vpc.vpc", "chain-qed.qed", "chain-parallels.parallels", "chain-qcow.qcow"]) {
      await same(["--output=json", "-O", "qcow2", src]);
      await same(["-O", "qcow2", "-o", "cluster_size=4k", src]);
      await same(["-O", "raw", src]);
    }
    await same(["--output=json", "-O", "qcow2", "-o", "compat=0.10", "bitmaps.qcow2"]);
    await same(["--output=json", "-O", "qcow2", "-o", "cluster_size=512", "bitmaps.qcow2"]);
  });
});
