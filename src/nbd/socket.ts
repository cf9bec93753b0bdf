/**
 * The abstract byte stream the NBD protocol runs over, so that the protocol code needs no
 * runtime: the Node adapter wraps `node:net` sockets, the Deno adapter `Deno.Conn`s.
 * @module
 */

/**
 * One connected byte stream. Reads are pulled: the adapter must not read ahead of the caller by
 * more than one chunk, which keeps what a peer can make us buffer bounded.
 */
export interface NbdSocket {
  /** A label for log lines (`127.0.0.1:51234`, `unix`). */
  readonly peer: string;
  /**
   * The next bytes received, at most `maxLength` of them (at least 1), or `null` once the peer
   * has closed its side. The returned buffer belongs to the caller.
   */
  read(maxLength: number): Promise<Uint8Array | null>;
  /**
   * Sends `data` (not kept after the promise settles); resolves once the bytes are handed to
   * the system, so awaiting it is the back-pressure. Rejects when the connection is gone.
   * Calls are sent whole and in call order, even when made without awaiting the previous one:
   * the protocol relies on this to keep a reply's header and data together.
   */
  write(data: Uint8Array): Promise<void>;
  /** Closes both directions; pending reads resolve `null`. Idempotent. */
  close(): void;
}

/** Where a server listens or a client connects. */
export type NbdAddress = { host?: string; port?: number } | { path: string };

/** A listening endpoint made by an adapter. */
export interface NbdListener {
  /** The address actually bound (the port chosen when 0 was asked for). */
  readonly address: NbdAddress;
  /** Stops accepting; open connections are not touched. */
  close(): Promise<void>;
}

/** Starts listening and calls `onConnection` for every accepted connection. */
export type NbdListen = (address: NbdAddress, onConnection: (socket: NbdSocket) => void) => Promise<NbdListener>;

/** Opens a connection. */
export type NbdConnect = (address: NbdAddress) => Promise<NbdSocket>;

/** The URL of an export at `address`. */
export function nbdUrl(address: NbdAddress, exportName: string): string {
  const name = encodeURIComponent(exportName).replace(/%2F/g, "/");
  if ("path" in address) return `nbd+unix:///${name}?socket=${encodeURIComponent(address.path)}`;
  const host = address.host ?? "127.0.0.1";
  const h = host.includes(":") ? `[${host}]` : host;
  return `nbd://${h}:${address.port ?? 10809}/${name}`;
}

/** What an `nbd://` or `nbd+unix://` URL names. */
export interface NbdTarget {
  address: NbdAddress;
  exportName: string;
}

/** True when `source` looks like an NBD URL (`nbd://`, `nbd+tcp://`, `nbd+unix://`). */
export function isNbdUrl(source: string): boolean {
  return /^nbd(\+tcp|\+unix)?:\/\//i.test(source);
}

/**
 * Parses an NBD URL as the NBD URI convention writes them: `nbd://host[:port]/name`,
 * `nbd+unix:///name?socket=PATH`. Throws a `TypeError` for anything else (TLS schemes included).
 */
export function parseNbdUrl(source: string): NbdTarget {
  const m = /^(nbd|nbd\+tcp|nbd\+unix):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i.exec(source);
  if (!m) throw new TypeError(`Not an NBD URL: ${source}`);
  const scheme = m[1].toLowerCase();
  const authority = m[2];
  const exportName = decodeURIComponent((m[3] ?? "/").slice(1));
  const query = new Map<string, string>();
  for (const pair of (m[4] ?? "").slice(1).split("&")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    query.set(decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq)), decodeURIComponent(eq < 0 ? "" : pair.slice(eq + 1)));
  }
  if (scheme === "nbd+unix") {
    const path = query.get("socket");
    if (authority !== "" || !path) throw new TypeError(`An nbd+unix URL needs no host and a ?socket= path: ${source}`);
    return { address: { path }, exportName };
  }
  const hm = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d+))?$/.exec(authority);
  if (!hm) throw new TypeError(`Bad host in NBD URL: ${source}`);
  const host = hm[1] ?? (hm[2] || "127.0.0.1");
  const port = hm[3] === undefined ? 10809 : Number(hm[3]);
  if (!(port > 0 && port < 65536)) throw new TypeError(`Bad port in NBD URL: ${source}`);
  return { address: { host, port }, exportName };
}
