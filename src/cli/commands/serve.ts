/**
 * `vdisk serve`: exports images over NBD, with qemu-nbd's flag names.
 * @module
 */
import { unlinkSync, writeFileSync } from "node:fs";
import type { BlockDevice } from "../../core/block-device.js";
import type { NodeFileOptions } from "../../adapters/node/file-backend.js";
import { NBD_DEFAULT_PORT, serveNbd, type NbdAddress, type NbdExportSpec, type NbdServerHandle } from "../../node.js";
import { optFlag, optString } from "../args.js";
import { HELP_OPTION, cliKernel, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError } from "../errors.js";
import { openCliImage } from "../open-image.js";

const SPECS = [
  HELP_OPTION,
  { key: "format", short: "f", long: "format", value: true },
  { key: "read-only", short: "r", long: "read-only" },
  { key: "export-name", short: "x", long: "export-name", value: true, repeat: true },
  { key: "description", short: "D", long: "description", value: true, repeat: true },
  { key: "port", short: "p", long: "port", value: true },
  { key: "bind", short: "b", long: "bind", value: true },
  { key: "socket", short: "k", long: "socket", value: true },
  { key: "persistent", short: "t", long: "persistent" },
  { key: "shared", short: "e", long: "shared", value: true },
  { key: "allocation-depth", short: "A", long: "allocation-depth" },
  { key: "cache", long: "cache", value: true },
  { key: "pid-file", long: "pid-file", value: true },
  { key: "handshake-limit", long: "handshake-limit", value: true },
];

const CACHE_MODES = ["none", "writeback", "writethrough", "directsync", "unsafe"] as const;
type CacheMode = (typeof CACHE_MODES)[number];

function intArg(text: string, what: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`Invalid ${what} '${text}'`);
  return n;
}

/** `vdisk serve`: qemu-nbd: serves images over NBD until interrupted (or the last client leaves). */
export const serveCommand: Command = {
  name: "serve",
  synopsis: "serve [-f FMT] [-r] [-x NAME] [-p PORT] [-b ADDR] [-k SOCKET] [-t] [-e N] [--allocation-depth] " +
    "[--cache MODE] [--pid-file F] FILE...",
  help: `usage: vdisk serve [-f FMT] [-r] [-x NAME] [-p PORT] [-b ADDR] [-k SOCKET] [-t] [-e N]
                   [--allocation-depth] [--cache MODE] [--pid-file F] FILE...

Exports FILE (any format vdisk reads, or an NBD URL) over the NBD protocol, as qemu-nbd does:
clients see the virtual disk's bytes. Prints the URL of each export, then serves until SIGINT
or SIGTERM (then flushes and exits 0) or, without -t, until the last client disconnects.
Several FILEs may be served at once, each under its own -x NAME (in the same order).

  -f, --format FMT          image format (probed when absent)
  -r, --read-only           export read-only (writes fail with EPERM)
  -x, --export-name NAME    export name (default: empty, the default export)
  -D, --description TEXT    export description (shown by NBD_OPT_LIST / nbdinfo)
  -p, --port PORT           TCP port (default ${NBD_DEFAULT_PORT}; 0 picks a free one)
  -b, --bind ADDR           address to listen on (default 127.0.0.1)
  -k, --socket PATH         listen on a Unix socket instead of TCP
  -t, --persistent          keep serving after the last client disconnects
  -e, --shared N            clients served at once (default 1; more wait their turn)
  -A, --allocation-depth    offer the qemu:allocation-depth metadata context
  --cache MODE              writeback (default: flush on request), writethrough and directsync
                            (flush after every write), unsafe (never flush); none = writeback
                            (no O_DIRECT)
  --pid-file FILE           write the process id to FILE once listening
  --handshake-limit N       seconds a client has to finish negotiating (default 10; 0 = none)
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    const files = args.operands;
    if (files.length === 0) throw new UsageError("Expecting a file name");
    const names = args.lists.get("export-name") ?? [];
    const descriptions = args.lists.get("description") ?? [];
    if (files.length > 1 && names.length !== files.length) {
      throw new UsageError("Serving several files needs one -x NAME per file, in the same order");
    }
    if (names.length > files.length) throw new UsageError("More -x NAME options than files");
    const readOnly = optFlag(args, "read-only");
    const persistent = optFlag(args, "persistent");
    const shared = intArg(optString(args, "shared") ?? "1", "shared connection count", 1, 1 << 16);
    const socketPath = optString(args, "socket");
    const port = intArg(optString(args, "port") ?? String(NBD_DEFAULT_PORT), "port", 0, 65535);
    const host = optString(args, "bind") ?? "127.0.0.1";
    const cacheText = optString(args, "cache") ?? "writeback";
    if (!(CACHE_MODES as readonly string[]).includes(cacheText)) throw new UsageError(`Invalid cache mode '${cacheText}'`);
    const cacheMode = cacheText as CacheMode;
    const cache: NodeFileOptions["cache"] = cacheMode === "unsafe" ? "unsafe" : "writeback";
    const pidFile = optString(args, "pid-file");
    const handshakeSeconds = intArg(optString(args, "handshake-limit") ?? "10", "handshake limit", 0, 86400);
    await cliKernel();

    const devices: BlockDevice[] = [];
    let handle: NbdServerHandle | undefined;
    let pidWritten = false;
    const stopSignals: Array<() => void> = [];
    try {
      for (const file of files) {
        const { device } = await openCliImage(file, {
          format: optString(args, "format"),
          readOnly,
          cache,
          warn: ctx.warn,
          blocking: false,
        });
        devices.push(device);
      }
      const exports: NbdExportSpec[] = devices.map((device, i) => ({
        name: names[i] ?? "",
        device,
        description: descriptions[i],
        writeThrough: cacheMode === "writethrough" || cacheMode === "directsync",
      }));
      const listen: NbdAddress = socketPath !== undefined ? { path: socketPath } : { host, port };
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      let seenClient = false;
      handle = await serveNbd(exports, {
        listen,
        allocationDepth: optFlag(args, "allocation-depth"),
        maxConnections: shared,
        handshakeTimeoutMs: handshakeSeconds * 1000,
        log: (m) => ctx.err(`vdisk serve: ${m}\n`),
        onConnectionCount: (n) => {
          if (n > 0) seenClient = true;
          else if (seenClient && !persistent) done();
        },
      });
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        const on = (): void => done();
        process.on(signal, on);
        stopSignals.push(() => process.off(signal, on));
      }
      if (pidFile !== undefined) {
        writeFileSync(pidFile, `${process.pid}\n`);
        pidWritten = true;
      }
      for (const url of handle.urls) ctx.out(`${url}\n`);
      await finished;
    } finally {
      for (const off of stopSignals) off();
      let failure: unknown;
      try {
        await handle?.close();
      } catch (e) {
        failure = e;
      }
      for (const d of devices) {
        try {
          await d.close();
        } catch (e) {
          failure ??= e;
        }
      }
      if (pidWritten) {
        try {
          unlinkSync(pidFile!);
        } catch {
          // Already removed by someone else.
        }
      }
      if (failure) {
        const why = failure instanceof Error ? failure.message : String(failure);
        throw new CliError(`Could not flush the served images: ${why}`, 1, { cause: failure });
      }
    }
    return 0;
  },
};
