/**
 * The runtime-neutral public surface. Every runtime entry re-exports this and adds the way
 * it turns a `source` (path, Blob) into an {@link IoBackend}.
 * @module
 */
export * from "./api-core.js";
export {
  openImageOn,
  createImageOn,
  probeFormat,
  readProbeInput,
  type OpenImageOptions,
  type CreateImageOptions,
} from "./ops/open.js";
export { amendImage, amendOptions, type AmendOptions } from "./ops/amend.js";
export { builtinDrivers, findDriver } from "./formats/registry.js";
