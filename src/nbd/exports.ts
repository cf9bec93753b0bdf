/**
 * An export as the server holds it: a device under a name, with the transmission flags and
 * block sizes derived once.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import * as C from "./constants.js";
import { deviceFeatures } from "./device-features.js";

/** One export offered by a server. */
export interface NbdExportSpec {
  /** The export name clients ask for; `""` is the default export. */
  name: string;
  device: BlockDevice;
  /** Shown by `NBD_INFO_DESCRIPTION` and `NBD_OPT_LIST`. */
  description?: string;
  /** Flush after every write request, as if each had `FUA` (qemu-nbd `--cache=writethrough`). */
  writeThrough?: boolean;
}

/** Block size constraints advertised with `NBD_INFO_BLOCK_SIZE`. */
export interface NbdBlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

/** An export with what is advertised for it. */
export interface ServedExport extends NbdExportSpec {
  readonly transmissionFlags: number;
  readonly blockSizes: NbdBlockSizes;
  readonly writable: boolean;
}

/** Settings that shape what every export advertises. */
export interface ExportPolicy {
  /** Every connection shares the one device (always true in this server) and more than one may connect. */
  multiConn: boolean;
}

/** Derives flags and sizes for `spec`. */
export function serveExport(spec: NbdExportSpec, policy: ExportPolicy): ServedExport {
  const f = deviceFeatures(spec.device);
  let flags = C.NBD_FLAG_HAS_FLAGS | C.NBD_FLAG_SEND_FLUSH | C.NBD_FLAG_SEND_CACHE;
  if (!f.writable) flags |= C.NBD_FLAG_READ_ONLY;
  else {
    flags |= C.NBD_FLAG_SEND_FUA | C.NBD_FLAG_SEND_WRITE_ZEROES;
    if (f.discard) flags |= C.NBD_FLAG_SEND_TRIM;
  }
  // Every connection goes through the same device object, whose flush covers every completed
  // write: what one client flushes is durable and visible to all.
  if (policy.multiConn) flags |= C.NBD_FLAG_CAN_MULTI_CONN;
  // Any byte range works (the engine does read-modify-write); aligned requests of the
  // allocation unit avoid it.
  let preferred = 4096;
  while (preferred < f.allocationUnit && preferred < 2 << 20) preferred *= 2;
  return {
    ...spec,
    transmissionFlags: flags,
    blockSizes: { minimum: 1, preferred, maximum: C.NBD_MAX_PAYLOAD },
    writable: f.writable,
  };
}
