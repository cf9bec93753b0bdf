/**
 * NBD sockets on `node:net`: TCP and Unix-domain listeners and connections as
 * {@link NbdSocket}s, with reads pulled so a peer cannot make us buffer more than ~1 MiB.
 * @module
 */
import * as net from "node:net";
import type { NbdAddress, NbdConnect, NbdListen, NbdListener, NbdSocket } from "../../nbd/socket.js";

/** Bytes received but not yet read beyond which the socket is paused. */
const HIGH_WATER = 1 << 20;

class NodeNbdSocket implements NbdSocket {
  readonly peer: string;
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(private readonly socket: net.Socket) {
    this.peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : "unix";
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      if (this.buffered >= HIGH_WATER) socket.pause();
      this.notify();
    });
    const end = (): void => {
      this.ended = true;
      this.notify();
    };
    socket.on("end", end);
    socket.on("close", end);
    // Errors (a reset peer) end the stream; the protocol layer sees `null` or a failed write.
    socket.on("error", end);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async read(maxLength: number): Promise<Uint8Array | null> {
    while (this.chunks.length === 0) {
      if (this.ended) return null;
      this.socket.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    let chunk = this.chunks[0];
    if (chunk.length > maxLength) {
      this.chunks[0] = chunk.subarray(maxLength);
      chunk = chunk.subarray(0, maxLength);
    } else {
      this.chunks.shift();
    }
    this.buffered -= chunk.length;
    if (this.buffered < HIGH_WATER && !this.ended) this.socket.resume();
    return chunk;
  }

  write(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed || !this.socket.writable) {
        reject(new Error("the connection is closed"));
        return;
      }
      this.socket.write(data, (e) => (e ? reject(e) : resolve()));
    });
  }

  close(): void {
    this.ended = true;
    this.socket.destroy();
    this.notify();
  }
}

function addressOf(server: net.Server, asked: NbdAddress): NbdAddress {
  if ("path" in asked) return asked;
  const a = server.address();
  if (a && typeof a === "object") return { host: a.address, port: a.port };
  return asked;
}

/** Listens with `node:net` (TCP by default on 127.0.0.1, or a Unix socket `path`). */
export const nodeNbdListen: NbdListen = (address, onConnection) =>
  new Promise<NbdListener>((resolve, reject) => {
    const server = net.createServer((s) => onConnection(new NodeNbdSocket(s)));
    server.once("error", reject);
    const ready = (): void => {
      server.off("error", reject);
      server.on("error", () => {});
      const bound = addressOf(server, address);
      resolve({
        address: bound,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    };
    if ("path" in address) server.listen({ path: address.path }, ready);
    else server.listen({ host: address.host ?? "127.0.0.1", port: address.port ?? 10809 }, ready);
  });

/** Connects with `node:net`. */
export const nodeNbdConnect: NbdConnect = (address) =>
  new Promise<NbdSocket>((resolve, reject) => {
    const s = "path" in address
      ? net.connect({ path: address.path })
      : net.connect({ host: address.host ?? "127.0.0.1", port: address.port ?? 10809 });
    s.once("error", reject);
    s.once("connect", () => {
      s.off("error", reject);
      resolve(new NodeNbdSocket(s));
    });
  });
