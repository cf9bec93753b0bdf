/**
 * NBD sockets on `Deno.listen`/`Deno.connect` (TCP and Unix). Needs `--allow-net` (for a Unix
 * socket: `--allow-net=unix:PATH` plus read and write access to PATH).
 * @module
 */
import type { NbdAddress, NbdConnect, NbdListen, NbdListener, NbdSocket } from "../../nbd/socket.js";

/** `Deno.Conn`, the members used. */
interface DenoConn {
  readonly remoteAddr: { hostname?: string; port?: number; path?: string };
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

/** `Deno.Listener`, the members used. */
interface DenoListener extends AsyncIterable<DenoConn> {
  readonly addr: { hostname?: string; port?: number; path?: string };
  close(): void;
}

type DenoNetOptions = { transport: "tcp"; hostname: string; port: number } | { transport: "unix"; path: string };

interface DenoNet {
  listen(options: DenoNetOptions): DenoListener;
  connect(options: DenoNetOptions): Promise<DenoConn>;
}

function denoNet(): DenoNet {
  const deno = (globalThis as { Deno?: DenoNet }).Deno;
  if (!deno) throw new TypeError("The Deno NBD sockets need the Deno runtime (globalThis.Deno is missing)");
  return deno;
}

function netOptions(address: NbdAddress): DenoNetOptions {
  return "path" in address
    ? { transport: "unix", path: address.path }
    : { transport: "tcp", hostname: address.host ?? "127.0.0.1", port: address.port ?? 10809 };
}

class DenoNbdSocket implements NbdSocket {
  readonly peer: string;
  private closed = false;
  /** Writes run one after another: `Conn.write` may write part of a buffer. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly conn: DenoConn) {
    const r = conn.remoteAddr;
    this.peer = r.hostname !== undefined ? `${r.hostname}:${r.port}` : "unix";
    try {
      conn.setNoDelay?.(true);
    } catch {
      // Unix connections have no Nagle algorithm to turn off.
    }
  }

  async read(maxLength: number): Promise<Uint8Array | null> {
    if (this.closed) return null;
    const buf = new Uint8Array(Math.min(maxLength, 1 << 20));
    try {
      const n = await this.conn.read(buf);
      return n === null ? null : buf.subarray(0, n);
    } catch {
      return null;
    }
  }

  write(data: Uint8Array): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.closed) throw new Error("the connection is closed");
      for (let pos = 0; pos < data.length;) pos += await this.conn.write(data.subarray(pos));
    });
    this.queue = run.catch(() => {});
    return run;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by the peer.
    }
  }
}

/** Listens with `Deno.listen`. */
export const denoNbdListen: NbdListen = (address, onConnection) => {
  const listener = denoNet().listen(netOptions(address));
  const accepting = (async () => {
    try {
      for await (const conn of listener) onConnection(new DenoNbdSocket(conn));
    } catch {
      // The listener was closed.
    }
  })();
  const a = listener.addr;
  const bound: NbdAddress = "path" in address ? address : { host: a.hostname, port: a.port };
  const result: NbdListener = {
    address: bound,
    close: async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
    },
  };
  return Promise.resolve(result);
};

/** Connects with `Deno.connect`. */
export const denoNbdConnect: NbdConnect = async (address) => new DenoNbdSocket(await denoNet().connect(netOptions(address)));
