/**
 * The runtime-neutral NBD server and client. The runtime entries add the sockets.
 * @module
 */
export { NbdServer, type NbdServerOptions } from "./server.js";
export type { NbdExportSpec, NbdBlockSizes } from "./exports.js";
export { NbdClient, type NbdExportInfo } from "./client.js";
export { NbdBackend, type NbdBackendOptions } from "./backend.js";
export {
  isNbdUrl,
  nbdUrl,
  parseNbdUrl,
  type NbdAddress,
  type NbdConnect,
  type NbdListen,
  type NbdListener,
  type NbdSocket,
  type NbdTarget,
} from "./socket.js";
export { startNbdServer, type NbdServeOptions, type NbdServerHandle, type NbdExportInput } from "./serve.js";
export { NBD_DEFAULT_PORT, NBD_MAX_PAYLOAD } from "./constants.js";
