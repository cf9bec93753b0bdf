/**
 * Creating Parallels images ("WithouFreSpacExt"), as `qemu-img create -f parallels`.
 * @module
 */
import type { CreateContext } from "../../core/format.js";
import { ImageError } from "../../errors.js";
import {
  PARALLELS_DEFAULT_CLUSTER_SIZE,
  PARALLELS_HEADER_SIZE,
  PARALLELS_HEADS,
  PARALLELS_MAGIC_V2,
  PARALLELS_MAX_TRACKS,
  PARALLELS_SECTORS_PER_CYLINDER,
  PARALLELS_VERSION,
  ParallelsHeaderCodec,
} from "./layout.js";

/** Creates a Parallels image in `ctx.file`. Sizes are rounded up to 512 bytes, as qemu-img does. */
export async function createParallels(ctx: CreateContext): Promise<void> {
  const requestedCluster = (ctx.options.cluster_size as number | undefined) ?? PARALLELS_DEFAULT_CLUSTER_SIZE;
  const cluster = Math.ceil(requestedCluster / 512) * 512;
  const size = Math.ceil(ctx.size / 512) * 512;
  if (cluster !== requestedCluster) ctx.warn(`parallels: cluster size rounded up from ${requestedCluster} to ${cluster} bytes`);
  if (size !== ctx.size) ctx.warn(`parallels: size rounded up from ${ctx.size} to ${size} bytes`);
  if (cluster === 0) throw new ImageError("ERR_INVALID_OPTION", "Cluster size must be a multiple of 512 bytes (got 0)");
  if (cluster / 512 > PARALLELS_MAX_TRACKS) {
    throw new ImageError("ERR_INVALID_OPTION", `Cluster size is too large (${cluster} bytes; the most is ${PARALLELS_MAX_TRACKS * 512})`);
  }
  if (size >= 2 ** 32 * cluster) {
    throw new ImageError("ERR_INVALID_OPTION", "Image size is too large for this cluster size");
  }
  const batEntries = Math.ceil(size / cluster);
  const batBytes = PARALLELS_HEADER_SIZE + batEntries * 4;
  const dataOffSectors = (Math.ceil(batBytes / cluster) * cluster) / 512;
  const header = ParallelsHeaderCodec.encode({
    magic: PARALLELS_MAGIC_V2,
    version: PARALLELS_VERSION,
    heads: PARALLELS_HEADS,
    cylinders: Math.floor(size / 512 / PARALLELS_HEADS / PARALLELS_SECTORS_PER_CYLINDER),
    tracks: cluster / 512,
    batEntries,
    nbSectors: size / 512,
    inuse: 0,
    dataOff: dataOffSectors,
    flags: 0,
    extOff: 0,
  });
  // The catalog starts all zero (nothing allocated): extending the file writes it.
  await ctx.file.truncate(dataOffSectors * 512);
  await ctx.file.write(0, header);
  await ctx.file.flush();
}
