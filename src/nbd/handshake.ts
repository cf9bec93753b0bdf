/**
 * The server side of fixed newstyle negotiation (proto.md "Fixed newstyle negotiation" and
 * "Option types"): greeting, client flags, then options until the client picks an export with
 * `NBD_OPT_EXPORT_NAME` or `NBD_OPT_GO`, or aborts.
 * @module
 */
import * as C from "./constants.js";
import type { ServedExport } from "./exports.js";
import type { NbdSocket } from "./socket.js";
import { NbdProtocolError, WireReader, WireWriter, fromUtf8, utf8 } from "./wire.js";

/** Longest option payload accepted; longer ones end the connection (nothing legitimate is near it). */
export const MAX_OPTION_LENGTH = 64 << 10;
/** Options one client may send before it is considered hostile. */
const MAX_OPTIONS = 4096;
/** Longest export name or metadata query (proto.md: "MUST be no larger than 4096"). */
const MAX_STRING = 4096;

/** A metadata context selected by `NBD_OPT_SET_META_CONTEXT`. */
export interface SelectedContext {
  readonly id: number;
  readonly name: string;
}

/** What negotiation agreed on. */
export interface Negotiated {
  readonly export: ServedExport;
  readonly structuredReplies: boolean;
  readonly contexts: readonly SelectedContext[];
}

/** What the handshake needs from the server. */
export interface HandshakeHost {
  findExport(name: string): ServedExport | undefined;
  listExports(): readonly ServedExport[];
  /** Metadata context names offered (`base:allocation`, maybe `qemu:allocation-depth`). */
  readonly contextNames: readonly string[];
}

class OptionError extends Error {
  constructor(readonly reply: number, message: string) {
    super(message);
  }
}

/** Runs negotiation. Returns `undefined` when the client aborted or left cleanly. */
export async function negotiate(socket: NbdSocket, reader: WireReader, host: HandshakeHost): Promise<Negotiated | undefined> {
  await socket.write(
    new WireWriter(18).u64Halves(C.NBD_MAGIC).u64Halves(C.NBD_OPTS_MAGIC)
      .u16(C.NBD_FLAG_FIXED_NEWSTYLE | C.NBD_FLAG_NO_ZEROES).bytes,
  );
  const clientFlags = new DataView((await reader.readExact(4)).buffer).getUint32(0);
  if (clientFlags & ~(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES)) {
    throw new NbdProtocolError(`unknown client flags 0x${clientFlags.toString(16)}`);
  }
  const noZeroes = (clientFlags & C.NBD_FLAG_C_NO_ZEROES) !== 0;
  let structured = false;
  let contexts: SelectedContext[] = [];
  let contextsFor: string | undefined;

  const reply = (option: number, type: number, data: Uint8Array = new Uint8Array(0)): Promise<void> =>
    socket.write(new WireWriter(20 + data.length).u64Halves(C.NBD_REP_MAGIC).u32(option).u32(type).u32(data.length).raw(data).bytes);

  for (let count = 0; ; count++) {
    if (count >= MAX_OPTIONS) throw new NbdProtocolError(`more than ${MAX_OPTIONS} options`);
    const header = new DataView((await reader.readExact(16)).buffer);
    if (header.getUint32(0) !== C.NBD_OPTS_MAGIC[0] || header.getUint32(4) !== C.NBD_OPTS_MAGIC[1]) {
      throw new NbdProtocolError("bad option magic");
    }
    const option = header.getUint32(8);
    const length = header.getUint32(12);
    if (length > MAX_OPTION_LENGTH) {
      throw new NbdProtocolError(`option ${option} has length ${length}, more than ${MAX_OPTION_LENGTH}`);
    }
    const data = await reader.readExact(length);

    if (option === C.NBD_OPT_EXPORT_NAME) {
      // No error reply exists for this option: an unknown name ends the session.
      const name = fromUtf8(data);
      const ex = host.findExport(name);
      if (!ex) throw new NbdProtocolError(`NBD_OPT_EXPORT_NAME asked for unknown export '${name}'`);
      const w = new WireWriter(noZeroes ? 10 : 134).u64(ex.device.size).u16(ex.transmissionFlags);
      await socket.write(w.bytes);
      return { export: ex, structuredReplies: structured, contexts: contextsFor === ex.name ? contexts : [] };
    }
    try {
      switch (option) {
        case C.NBD_OPT_ABORT:
          await reply(option, C.NBD_REP_ACK).catch(() => {});
          return undefined;
        case C.NBD_OPT_LIST: {
          if (length !== 0) throw new OptionError(C.NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
          for (const ex of host.listExports()) {
            const name = utf8(ex.name);
            const desc = utf8(ex.description ?? "");
            const body = new WireWriter(4 + name.length + desc.length).u32(name.length).raw(name).raw(desc).bytes;
            await reply(option, C.NBD_REP_SERVER, body);
          }
          await reply(option, C.NBD_REP_ACK);
          break;
        }
        case C.NBD_OPT_STRUCTURED_REPLY:
          if (length !== 0) throw new OptionError(C.NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
          structured = true;
          await reply(option, C.NBD_REP_ACK);
          break;
        case C.NBD_OPT_INFO:
        case C.NBD_OPT_GO: {
          const { ex, requests } = parseInfoRequest(data, host);
          for (const r of infoReplies(ex, requests)) await reply(option, C.NBD_REP_INFO, r);
          await reply(option, C.NBD_REP_ACK);
          if (option === C.NBD_OPT_GO) {
            return { export: ex, structuredReplies: structured, contexts: contextsFor === ex.name ? contexts : [] };
          }
          break;
        }
        case C.NBD_OPT_LIST_META_CONTEXT:
        case C.NBD_OPT_SET_META_CONTEXT: {
          const set = option === C.NBD_OPT_SET_META_CONTEXT;
          if (set && !structured) {
            throw new OptionError(C.NBD_REP_ERR_INVALID, "NBD_OPT_SET_META_CONTEXT needs structured replies first");
          }
          const { exportName, queries } = parseMetaRequest(data, host);
          const names = matchContexts(host.contextNames, queries, set);
          const selected = names.map((name) => ({ id: host.contextNames.indexOf(name) + 1, name }));
          for (const c of selected) {
            const n = utf8(c.name);
            await reply(option, C.NBD_REP_META_CONTEXT, new WireWriter(4 + n.length).u32(set ? c.id : 0).raw(n).bytes);
          }
          if (set) {
            contexts = selected;
            contextsFor = exportName;
          }
          await reply(option, C.NBD_REP_ACK);
          break;
        }
        case C.NBD_OPT_STARTTLS:
          throw new OptionError(C.NBD_REP_ERR_POLICY, "TLS is not offered by this server");
        default:
          throw new OptionError(C.NBD_REP_ERR_UNSUP, `option ${option} is not supported`);
      }
    } catch (e) {
      if (!(e instanceof OptionError)) throw e;
      await reply(option, e.reply, utf8(e.message));
    }
  }
}

function parseInfoRequest(data: Uint8Array, host: HandshakeHost): { ex: ServedExport; requests: number[] } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const invalid = (): never => {
    throw new OptionError(C.NBD_REP_ERR_INVALID, "malformed NBD_OPT_INFO/NBD_OPT_GO data");
  };
  if (data.length < 6) invalid();
  const nameLength = view.getUint32(0);
  if (nameLength > MAX_STRING || 4 + nameLength + 2 > data.length) invalid();
  const name = fromUtf8(data.subarray(4, 4 + nameLength));
  const count = view.getUint16(4 + nameLength);
  if (data.length !== 6 + nameLength + 2 * count) invalid();
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(view.getUint16(6 + nameLength + 2 * i));
  const ex = host.findExport(name);
  if (!ex) throw new OptionError(C.NBD_REP_ERR_UNKNOWN, `no export named '${name}'`);
  return { ex, requests };
}

function infoReplies(ex: ServedExport, requests: readonly number[]): Uint8Array[] {
  const out = [new WireWriter(12).u16(C.NBD_INFO_EXPORT).u64(ex.device.size).u16(ex.transmissionFlags).bytes];
  if (requests.includes(C.NBD_INFO_NAME)) {
    const n = utf8(ex.name);
    out.push(new WireWriter(2 + n.length).u16(C.NBD_INFO_NAME).raw(n).bytes);
  }
  if (requests.includes(C.NBD_INFO_DESCRIPTION) && ex.description) {
    const d = utf8(ex.description);
    out.push(new WireWriter(2 + d.length).u16(C.NBD_INFO_DESCRIPTION).raw(d).bytes);
  }
  // Always sent: the sizes are the defaults' superset (minimum 1), so clients may ignore them.
  const b = ex.blockSizes;
  out.push(new WireWriter(14).u16(C.NBD_INFO_BLOCK_SIZE).u32(b.minimum).u32(b.preferred).u32(b.maximum).bytes);
  return out;
}

function parseMetaRequest(data: Uint8Array, host: HandshakeHost): { exportName: string; queries: string[] } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const invalid = (): never => {
    throw new OptionError(C.NBD_REP_ERR_INVALID, "malformed metadata context request");
  };
  if (data.length < 8) invalid();
  const nameLength = view.getUint32(0);
  if (nameLength > MAX_STRING || 8 + nameLength > data.length) invalid();
  const exportName = fromUtf8(data.subarray(4, 4 + nameLength));
  let pos = 4 + nameLength;
  const count = view.getUint32(pos);
  pos += 4;
  if (count > (data.length - pos) / 4) invalid();
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (pos + 4 > data.length) invalid();
    const len = view.getUint32(pos);
    pos += 4;
    if (len > MAX_STRING || pos + len > data.length) invalid();
    queries.push(fromUtf8(data.subarray(pos, pos + len)));
    pos += len;
  }
  if (pos !== data.length) invalid();
  if (!host.findExport(exportName)) throw new OptionError(C.NBD_REP_ERR_UNKNOWN, `no export named '${exportName}'`);
  return { exportName, queries };
}

/**
 * The offered contexts a list of queries selects: exact names; for listing also a bare
 * namespace (`base:`), and everything when there are no queries.
 */
function matchContexts(offered: readonly string[], queries: readonly string[], set: boolean): string[] {
  if (queries.length === 0) return set ? [] : [...offered];
  return offered.filter((name) =>
    queries.some((q) => q === name || (!set && q.endsWith(":") && name.startsWith(q)))
  );
}
