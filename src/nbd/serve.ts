/**
 * `serveNbd` without a runtime: exports devices on a listener made by an adapter's
 * {@link NbdListen}. The Node and Deno entries bind it to their sockets.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import { NBD_DEFAULT_PORT } from "./constants.js";
import type { NbdExportSpec } from "./exports.js";
import { NbdServer, type NbdServerOptions } from "./server.js";
import { nbdUrl, type NbdAddress, type NbdListen, type NbdListener } from "./socket.js";

/**
 * What `serveNbd` exports: one device (as the default export `""`), a list of named exports,
 * or an object mapping export names to devices.
 */
export type NbdExportInput = BlockDevice | readonly NbdExportSpec[] | Readonly<Record<string, BlockDevice>>;

/** Options of `serveNbd`. */
export interface NbdServeOptions extends NbdServerOptions {
  /** Where to listen: TCP (default 127.0.0.1:10809; port 0 picks a free one) or a Unix socket path. */
  listen?: NbdAddress;
}

/** A running server. */
export interface NbdServerHandle {
  /** The address bound (with the real port when 0 was asked for). */
  readonly address: NbdAddress;
  /** The URL of each export, in export order (`nbd://127.0.0.1:10809/name`, `nbd+unix:///name?socket=…`). */
  readonly urls: readonly string[];
  readonly server: NbdServer;
  /**
   * Stops listening, disconnects the clients after their current requests, and flushes the
   * writable devices. The devices stay open: closing them is the caller's job.
   */
  close(): Promise<void>;
}

function isDevice(x: NbdExportInput): x is BlockDevice {
  return typeof (x as BlockDevice).readInto === "function";
}

/** Normalises {@link NbdExportInput} to a list of exports. */
export function exportList(input: NbdExportInput): NbdExportSpec[] {
  if (isDevice(input)) return [{ name: "", device: input }];
  if (Array.isArray(input)) return [...(input as readonly NbdExportSpec[])];
  return Object.entries(input as Record<string, BlockDevice>).map(([name, device]) => ({ name, device }));
}

/** Starts a server on `listen` (an adapter's listener). */
export async function startNbdServer(listen: NbdListen, devices: NbdExportInput, options: NbdServeOptions = {}): Promise<NbdServerHandle> {
  const server = new NbdServer(exportList(devices), options);
  const address = options.listen ?? { host: "127.0.0.1", port: NBD_DEFAULT_PORT };
  const listener: NbdListener = await listen(address, (socket) => server.handle(socket));
  let closing: Promise<void> | undefined;
  return {
    address: listener.address,
    urls: server.exports.map((e) => nbdUrl(listener.address, e.name)),
    server,
    close: () =>
      (closing ??= (async () => {
        // Together: a listener may wait for its connections to end, which server.close() does.
        await Promise.all([listener.close(), server.close()]);
      })()),
  };
}
