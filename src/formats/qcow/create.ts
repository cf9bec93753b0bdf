/**
 * Creating QCOW (v1) images with the layout `qemu-img create -f qcow` uses: 4 KiB clusters with
 * 512-entry L2 tables, or 512-byte clusters with 4096-entry L2 tables when there is a backing
 * file (so a write never copies more than one sector from it).
 * @module
 */
import type { CreateContext, CreateOptionSpec } from "../../core/format.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import {
  QCOW_CRYPT_NONE,
  QCOW_HEADER,
  QCOW_HEADER_SIZE,
  QCOW_MAGIC,
  QCOW_MAX_BACKING_NAME,
  QCOW_MAX_CLUSTER_BITS,
  QCOW_MAX_L1_BYTES,
  QCOW_MIN_CLUSTER_BITS,
  QCOW_VERSION,
  qcowDefaultL2Bits,
  qcowGeometry,
  type QcowHeader,
} from "./layout.js";

/** `-o` options of `create -f qcow` (qemu-img's, plus `cluster_size`). */
export const QCOW_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  {
    name: "cluster_size",
    type: "size",
    help: "QCOW cluster size, 512 to 64k, a power of two (vdisk extension; qemu reads any of them)",
    defaultText: "4k, or 512 with a backing file",
  },
  { name: "encryption", type: "bool", help: "Encrypt the image with AES (not supported by vdisk)", defaultText: "off" },
  { name: "encrypt.format", type: "string", help: "Encryption format: 'aes' (not supported by vdisk)" },
  { name: "encrypt.key-secret", type: "string", help: "ID of the secret that provides the AES key (not supported by vdisk)" },
];

function clusterBitsFor(ctx: CreateContext): number {
  const v = ctx.options.cluster_size;
  if (v === undefined) return ctx.backing ? 9 : 12;
  const n = Number(v);
  const bits = Math.log2(n);
  if (!Number.isInteger(bits) || bits < QCOW_MIN_CLUSTER_BITS || bits > QCOW_MAX_CLUSTER_BITS) {
    throw new ImageError("ERR_INVALID_OPTION", `qcow cluster size must be a power of two between 512 and 64k (got ${v})`);
  }
  return bits;
}

/** Writes a new, empty QCOW image into `ctx.file`. */
export async function createQcow(ctx: CreateContext): Promise<void> {
  const o = ctx.options;
  if (o.encryption === true || o["encrypt.format"] !== undefined || o["encrypt.key-secret"] !== undefined) {
    throw new UnsupportedFeatureError("Cannot create qcow image: AES encryption is not supported (it is insecure; use LUKS instead)", {
      format: "qcow",
    });
  }
  const size = Math.ceil(ctx.size / 512) * 512;
  if (size === 0) throw new RangeError("Cannot create a qcow image of size 0: qcow images hold at least 512 bytes");
  const clusterBits = clusterBitsFor(ctx);
  const l2Bits = qcowDefaultL2Bits(clusterBits);
  const geo = qcowGeometry(size, clusterBits, l2Bits);
  const l1Bytes = geo.l1Entries * 8;
  if (l1Bytes > QCOW_MAX_L1_BYTES) {
    throw new RangeError(`Cannot create a qcow image of ${size} bytes with ${geo.clusterSize}-byte clusters: the L1 table would be too large`);
  }
  const name = ctx.backing ? new TextEncoder().encode(ctx.backing.name) : new Uint8Array(0);
  if (name.length > QCOW_MAX_BACKING_NAME) {
    throw new ImageError(
      "ERR_INVALID_OPTION",
      `Cannot create qcow image: backing file name of ${name.length} bytes exceeds the limit of ${QCOW_MAX_BACKING_NAME}`,
    );
  }
  const l1Offset = Math.ceil((QCOW_HEADER_SIZE + name.length) / 8) * 8;
  const header: QcowHeader = {
    magic: QCOW_MAGIC,
    version: QCOW_VERSION,
    backingFileOffset: ctx.backing ? QCOW_HEADER_SIZE : 0,
    backingFileSize: name.length,
    mtime: 0,
    size,
    clusterBits,
    l2Bits,
    padding: 0,
    cryptMethod: QCOW_CRYPT_NONE,
    l1TableOffset: l1Offset,
  };
  const head = new Uint8Array(l1Offset);
  QCOW_HEADER.encode(header, head);
  head.set(name, QCOW_HEADER_SIZE);
  // The L1 table is zeros, padded to whole sectors as QEMU writes it.
  await ctx.file.truncate(l1Offset + Math.ceil(l1Bytes / 512) * 512);
  await ctx.file.write(0, head);
  await ctx.file.flush();
}
