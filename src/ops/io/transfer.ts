/**
 * qemu-io's transfer commands: `read`, `readv`, `write`, `writev`, `aio_read`, `aio_write`,
 * `discard`, with their options, pattern checks and result lines.
 * @module
 */
import { IoUsageError, getopt, parseIoNumber, parsePattern, type GetoptResult } from "./args.js";
import { errnoText, hexDump, transferReport } from "./report.js";
import type { IoCommandSpec, IoSession } from "./session.js";

/** qemu's largest single request (INT_MAX rounded down to a sector). */
const MAX_REQUEST_BYTES = 2147483136;

/** `bytes` rounded up to whole 512-byte sectors, the size qemu gives a disk. */
export const sectorSize = (bytes: number): number => Math.ceil(bytes / 512) * 512;

const now = (): number => globalThis.performance.now() / 1000;

function checkLength(text: string, length: number): void {
  if (length > MAX_REQUEST_BYTES) {
    throw new IoUsageError(`length cannot exceed ${MAX_REQUEST_BYTES}, given ${text}`, false, true);
  }
}

/** Offset and the lengths after it (one for plain commands, several for the vector ones). */
function offsetAndLengths(o: GetoptResult, vector: boolean): { offset: number; lengths: number[]; total: number } {
  if (vector ? o.operands.length < 2 : o.operands.length !== 2) throw new IoUsageError("", true);
  const offset = parseIoNumber(o.operands[0]);
  const lengths = o.operands.slice(1).map((t) => {
    const n = parseIoNumber(t);
    checkLength(t, n);
    return n;
  });
  const total = lengths.reduce((a, b) => a + b, 0);
  checkLength(String(total), total);
  return { offset, lengths, total };
}

/** Reports and verifies one finished read; false on a pattern mismatch. */
function finishRead(
  s: IoSession,
  o: GetoptResult,
  buf: Uint8Array,
  offset: number,
  seconds: number,
  patternRange?: { start: number; length: number },
): boolean {
  let ok = true;
  const p = o.values.get("P");
  if (p !== undefined) {
    const pattern = parsePattern(p);
    const start = patternRange?.start ?? 0;
    const length = patternRange?.length ?? buf.length;
    const end = Math.min(buf.length, start + length);
    for (let i = start; i < end; i++) {
      if (buf[i] !== pattern) {
        s.output.out(`Pattern verification failed at offset ${offset + start}, ${length} bytes`);
        ok = false;
        break;
      }
    }
  }
  if (o.flags.has("v")) for (const l of hexDump(buf, offset)) s.output.out(l);
  if (!o.flags.has("q")) {
    for (const l of transferReport("read", offset, buf.length, buf.length, 1, seconds, o.flags.has("C"))) s.output.out(l);
  }
  return ok;
}

async function doRead(s: IoSession, words: readonly string[], name: string, spec: string, vector: boolean, aio: boolean): Promise<boolean> {
  const o = getopt(name, words, spec);
  if (o.flags.has("b")) throw new IoUsageError(`${name}: -b (VM state) is not supported by vdisk io`, false, true);
  if (o.values.has("P")) parsePattern(o.values.get("P") ?? "");
  const { offset, total } = offsetAndLengths(o, vector);
  let range: { start: number; length: number } | undefined;
  if (o.values.has("s") || o.values.has("l")) {
    const start = o.values.has("s") ? parseIoNumber(o.values.get("s") ?? "") : 0;
    const length = o.values.has("l") ? parseIoNumber(o.values.get("l") ?? "") : total - start;
    if (start + length > total) {
      throw new IoUsageError(`pattern verification range exceeds end of read data`, false, true);
    }
    range = { start, length };
  }
  const device = s.image;
  const work = async (): Promise<boolean> => {
    const t0 = now();
    let buf: Uint8Array;
    try {
      // qemu sees whole sectors: the tail of a disk whose size is no multiple of 512 reads as zeros.
      if (offset + total > sectorSize(device.size)) throw new RangeError("past the end");
      if (offset + total <= device.size) buf = await device.read(offset, total);
      else {
        buf = new Uint8Array(total);
        if (offset < device.size) buf.set(await device.read(offset, device.size - offset));
      }
    } catch (e) {
      s.output.out(`${vector ? "readv" : "read"} failed: ${errnoText(e)}`);
      return false;
    }
    return finishRead(s, o, buf, offset, now() - t0, range);
  };
  if (aio) {
    s.enqueue(work);
    return true;
  }
  return work();
}

async function doWrite(s: IoSession, words: readonly string[], name: string, spec: string, vector: boolean, aio: boolean): Promise<boolean> {
  const o = getopt(name, words, spec);
  if (o.flags.has("b")) throw new IoUsageError(`${name}: -b (VM state) is not supported by vdisk io`, false, true);
  const zero = o.flags.has("z");
  const compressed = o.flags.has("c");
  if ([zero, o.values.has("P"), o.values.has("s")].filter((x) => x).length > 1) {
    throw new IoUsageError("Only one of -z, -P, and -s can be specified at the same time", false, true);
  }
  if (o.flags.has("u") && !zero) throw new IoUsageError("-u requires -z to be specified", false, true);
  if (o.flags.has("n") && !zero) throw new IoUsageError("-n requires -z to be specified", false, true);
  if (o.flags.has("f") && (compressed || o.flags.has("b"))) {
    throw new IoUsageError("-f and -b or -c cannot be specified at the same time", false, true);
  }
  if (o.values.has("s")) throw new IoUsageError(`${name}: -s source_file is not supported by vdisk io`, false, true);
  const pattern = o.values.has("P") ? parsePattern(o.values.get("P") ?? "") : 0xcd;
  const { offset, total } = offsetAndLengths(o, vector);
  if (compressed) {
    // Compressed writes go whole sectors at a time.
    if (offset % 512 !== 0) throw new IoUsageError(`${offset} is not a sector-aligned value for 'offset'`, false, true);
    if (total % 512 !== 0) throw new IoUsageError(`${total} is not a sector-aligned value for 'count'`, false, true);
  }
  const device = s.image;
  const work = async (): Promise<boolean> => {
    const t0 = now();
    try {
      if (offset + total > device.size) throw new RangeError("past the end");
      if (zero) await device.writeZeroes(offset, total, { unmap: o.flags.has("u") });
      else {
        const data = new Uint8Array(total).fill(pattern);
        if (compressed) await device.writeCompressed(offset, data);
        else await device.write(offset, data);
      }
      if (o.flags.has("f")) await device.flush();
    } catch (e) {
      s.output.out(`${aio ? "aio_write" : vector ? "writev" : "write"} failed: ${errnoText(e)}`);
      return false;
    }
    if (!o.flags.has("q")) {
      for (const l of transferReport("wrote", offset, total, total, 1, now() - t0, o.flags.has("C"))) s.output.out(l);
    }
    return true;
  };
  if (aio) {
    s.enqueue(work);
    return true;
  }
  return work();
}

async function doDiscard(s: IoSession, words: readonly string[]): Promise<boolean> {
  const o = getopt("discard", words, "Cq");
  const { offset, total } = offsetAndLengths(o, false);
  const device = s.image;
  const t0 = now();
  try {
    if (offset + total > device.size) throw new RangeError("past the end");
    await device.discard(offset, total);
  } catch (e) {
    s.output.out(`discard failed: ${errnoText(e)}`);
    return false;
  }
  if (!o.flags.has("q")) {
    for (const l of transferReport("discard", offset, total, total, 1, now() - t0, o.flags.has("C"))) s.output.out(l);
  }
  return true;
}

const file = { needsFile: true, argmin: 2, argmax: -1 } as const;

/** The transfer commands, keyed by name. */
export const TRANSFER_COMMANDS: readonly IoCommandSpec[] = [
  {
    ...file,
    name: "read",
    altname: "r",
    args: "[-abCqv] [-P pattern [-s off] [-l len]] off len",
    oneline: "reads a number of bytes at a specified offset",
    writes: false,
    run: (s, w) => doRead(s, w, "read", "abCpqvP:s:l:", false, false),
  },
  {
    ...file,
    name: "readv",
    args: "[-Cqv] [-P pattern] off len [len..]",
    oneline: "reads a number of bytes at a specified offset",
    writes: false,
    run: (s, w) => doRead(s, w, "readv", "CqvP:", true, false),
  },
  {
    ...file,
    name: "aio_read",
    args: "[-Ciqv] [-P pattern] off len [len..]",
    oneline: "asynchronously reads a number of bytes",
    writes: false,
    async: true,
    run: (s, w) => doRead(s, w, "aio_read", "CiqvP:", true, true),
  },
  {
    ...file,
    name: "write",
    altname: "w",
    args: "[-bcCfnquz] [-P pattern | -s source_file] off len",
    oneline: "writes a number of bytes at a specified offset",
    writes: true,
    run: (s, w) => doWrite(s, w, "write", "bcCfnpquzP:s:", false, false),
  },
  {
    ...file,
    name: "writev",
    args: "[-Cfq] [-P pattern] off len [len..]",
    oneline: "writes a number of bytes at a specified offset",
    writes: true,
    run: (s, w) => doWrite(s, w, "writev", "CfqP:", true, false),
  },
  {
    ...file,
    name: "aio_write",
    args: "[-Cfiquz] [-P pattern] off len [len..]",
    oneline: "asynchronously writes a number of bytes",
    writes: true,
    async: true,
    run: (s, w) => doWrite(s, w, "aio_write", "CfiquzP:", true, true),
  },
  {
    ...file,
    name: "discard",
    altname: "d",
    args: "[-Cq] off len",
    oneline: "discards a number of bytes at a specified offset",
    writes: true,
    run: doDiscard,
  },
];
