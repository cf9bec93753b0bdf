/**
 * Builds dynamic VHDs with another block size than vdisk and qemu-img write (Hyper-V uses
 * 512 KiB for some disks): vdisk's own 2 MiB image with the dynamic header and BAT rewritten.
 */
import { MemoryBackend, createImage } from "../../src/index.js";
import { VhdDynamicHeaderCodec, encodeVhdDynamicHeader } from "../../src/formats/vhd/layout.js";

/** An empty dynamic VHD of `size` bytes (force_size) whose blocks hold `blockSize` bytes. */
export async function vhdWithBlockSize(size: number, blockSize: number): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  await (await createImage(mem, { format: "vpc", size, options: "force_size=on" })).close();
  const src = mem.bytes();
  const footer = src.slice(0, 512);
  const header = VhdDynamicHeaderCodec.decode(src, 512);
  const entries = Math.ceil(size / blockSize);
  const batBytes = Math.ceil((entries * 4) / 512) * 512;
  const out = new Uint8Array(1536 + batBytes + 512);
  out.set(footer, 0);
  out.set(encodeVhdDynamicHeader({ ...header, blockSize, maxTableEntries: entries }), 512);
  out.fill(0xff, 1536, 1536 + batBytes);
  out.set(footer, 1536 + batBytes);
  return out;
}
