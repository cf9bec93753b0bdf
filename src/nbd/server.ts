/**
 * The NBD server: a set of exports and the sessions of the clients connected to them. It runs
 * over any {@link NbdSocket}; the runtime adapters accept connections and hand them to
 * {@link NbdServer.handle}.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import * as C from "./constants.js";
import { serveExport, type NbdExportSpec, type ServedExport } from "./exports.js";
import { negotiate, type HandshakeHost } from "./handshake.js";
import type { NbdSocket } from "./socket.js";
import { Transmission } from "./transmission.js";
import { NbdEndOfStream, WireReader } from "./wire.js";

/** Options of {@link NbdServer}. */
export interface NbdServerOptions {
  /** Receives one line per notable event (a client dropped, a failed request). Default: none. */
  log?: (message: string) => void;
  /** Offer the `qemu:allocation-depth` metadata context (qemu-nbd `--allocation-depth`). */
  allocationDepth?: boolean;
  /**
   * Clients served at once (qemu-nbd `-e`); further connections wait their turn (at most 64
   * of them; more are closed). Default: unlimited. `CAN_MULTI_CONN` is advertised when > 1.
   */
  maxConnections?: number;
  /** Called whenever the number of connected clients (waiting ones included) changes. */
  onConnectionCount?: (count: number) => void;
  /**
   * Milliseconds a client has to finish negotiation before it is disconnected (qemu-nbd
   * `--handshake-limit`), so a silent connection cannot hold a slot. Default 10 000; 0 = none.
   */
  handshakeTimeoutMs?: number;
}

/** Connections waiting for a free slot beyond which new ones are closed at once. */
const MAX_WAITING = 64;

/** Serves exports to clients. One server may carry several exports and any number of clients. */
export class NbdServer implements HandshakeHost {
  readonly exports: readonly ServedExport[];
  readonly contextNames: readonly string[];
  private readonly log: (message: string) => void;
  private readonly maxConnections: number;
  private readonly sockets = new Set<NbdSocket>();
  private readonly sessions = new Set<Promise<void>>();
  private readonly waiting: NbdSocket[] = [];
  private active = 0;
  private closed = false;

  constructor(exports: readonly NbdExportSpec[], private readonly options: NbdServerOptions = {}) {
    if (exports.length === 0) throw new TypeError("an NBD server needs at least one export");
    const names = new Set<string>();
    for (const e of exports) {
      if (names.has(e.name)) throw new TypeError(`two exports are named '${e.name}'`);
      names.add(e.name);
    }
    this.maxConnections = options.maxConnections ?? Infinity;
    if (!(this.maxConnections >= 1)) throw new RangeError(`maxConnections must be at least 1`);
    const multiConn = this.maxConnections > 1;
    this.exports = exports.map((e) => serveExport(e, { multiConn }));
    this.contextNames = options.allocationDepth ? [C.BASE_ALLOCATION, C.QEMU_ALLOCATION_DEPTH] : [C.BASE_ALLOCATION];
    this.log = options.log ?? (() => {});
  }

  findExport(name: string): ServedExport | undefined {
    return this.exports.find((e) => e.name === name);
  }

  listExports(): readonly ServedExport[] {
    return this.exports;
  }

  /** Clients connected, waiting ones included. */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /**
   * Takes a new connection: serves it now or when a slot frees. Never throws; a client that
   * breaks the protocol is disconnected with a log line.
   */
  handle(socket: NbdSocket): void {
    if (this.closed) {
      socket.close();
      return;
    }
    if (this.active >= this.maxConnections) {
      if (this.waiting.length >= MAX_WAITING) {
        this.log(`${socket.peer}: too many connections waiting, closed`);
        socket.close();
        return;
      }
      this.waiting.push(socket);
      this.sockets.add(socket);
      this.countChanged();
      return;
    }
    this.sockets.add(socket);
    this.start(socket);
    this.countChanged();
  }

  private start(socket: NbdSocket): void {
    this.active++;
    const session = this.session(socket).finally(() => {
      this.active--;
      this.sessions.delete(session);
      this.sockets.delete(socket);
      socket.close();
      const next = this.waiting.shift();
      if (next && !this.closed) this.start(next);
      this.countChanged();
    });
    this.sessions.add(session);
  }

  private countChanged(): void {
    this.options.onConnectionCount?.(this.sockets.size);
  }

  private async session(socket: NbdSocket): Promise<void> {
    const reader = new WireReader(socket);
    let phase = "handshake";
    const limit = this.options.handshakeTimeoutMs ?? 10_000;
    let timedOut = false;
    const timer = limit > 0
      ? setTimeout(() => {
          timedOut = true;
          socket.close();
        }, limit)
      : undefined;
    try {
      let agreed;
      try {
        agreed = await negotiate(socket, reader, this);
      } finally {
        if (timer !== undefined) clearTimeout(timer);
      }
      if (timedOut) {
        this.log(`${socket.peer}: dropped: negotiation not finished within ${limit} ms`);
        return;
      }
      if (!agreed) return;
      phase = `export '${agreed.export.name}'`;
      await new Transmission(socket, reader, agreed, (m) => this.log(`${socket.peer}: ${m}`)).run();
    } catch (e) {
      if (timedOut) {
        this.log(`${socket.peer}: dropped: negotiation not finished within ${limit} ms`);
        return;
      }
      if (e instanceof NbdEndOfStream && !e.midMessage) return;
      if (this.closed) return;
      this.log(`${socket.peer}: dropped during ${phase}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * Disconnects every client (requests being served finish first) and refuses new ones; then
   * flushes the writable devices. Does not close the devices: they belong to the caller.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.waiting.splice(0)) {
      this.sockets.delete(s);
      s.close();
    }
    for (const s of this.sockets) s.close();
    await Promise.all([...this.sessions]);
    const flushed = new Set<BlockDevice>();
    for (const e of this.exports) {
      if (e.writable && !flushed.has(e.device)) {
        flushed.add(e.device);
        await e.device.flush();
      }
    }
  }
}
