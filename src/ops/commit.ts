/**
 * Committing an image into a file of its backing chain (`vdisk commit`), as qemu-img commit:
 * every range that the layers above the target provide is written into the target (grown to
 * the image's size first when smaller), then the image is emptied — its ranges read through to
 * the backing file again — when the target is its immediate backing file and the format can be
 * emptied (its driver has `makeEmpty`, as qemu's drivers have `bdrv_make_empty`: qcow2 and
 * qcow; elsewhere the data stays, as with qemu-img).
 * @module
 */
import { progressReporter, throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import { ImageError } from "../errors.js";

/** Options of {@link commitImage}. */
export interface CommitOptions extends OperationOptions {
  /**
   * The layer to commit into: its index in {@link backingChain} of the image (1, the default,
   * is the immediate backing file).
   */
  baseDepth?: number;
  /**
   * Opens `layer` — a member of the image's chain, open read-only there — a second time,
   * read-write (with its own backing chain): the target of the commit. The commit closes it.
   */
  openWritable(layer: BlockDevice): Promise<BlockDevice>;
  /** Leave the image's data in place (`-d`; implied when committing past the immediate backing file). */
  keepData?: boolean;
  /** Bytes copied per request. Default 1 MiB. */
  chunkSize?: number;
}

/** What {@link commitImage} did. */
export interface CommitResult {
  /** Bytes of guest data written into the target (zero ranges not counted). */
  bytesCopied: number;
  /** The image was emptied (it now reads everything from its backing file). */
  emptied: boolean;
}

/** The image and the images of its backing chain, top first. */
export function backingChain(image: BlockDevice): BlockDevice[] {
  const chain: BlockDevice[] = [image];
  let b: BlockDevice | undefined = image.backing;
  while (b) {
    chain.push(b);
    b = b.backing;
  }
  return chain;
}

/**
 * Commits `image` (open read-write with its backing chain) into the layer `baseDepth` of its
 * chain. Throws `ERR_OUT_OF_RANGE` when the image has no backing file or no such layer, and the
 * target's errors (a target that must grow but cannot resize: `ERR_UNSUPPORTED_FEATURE`).
 * Layers between the image and the target are not changed: after committing past them they may
 * read differently from the image, as with qemu-img. Run it with no other I/O on the chain.
 * When `signal` aborts, the copy stops between requests, the target is flushed and closed, the
 * image is not emptied (it still reads the same) and the promise rejects with the reason.
 */
export async function commitImage(image: BlockDevice, options: CommitOptions): Promise<CommitResult> {
  const chain = backingChain(image);
  const depth = options.baseDepth ?? 1;
  if (chain.length < 2) {
    throw new ImageError("ERR_OUT_OF_RANGE", "Image does not have a backing file", { format: image.format });
  }
  if (!Number.isInteger(depth) || depth < 1 || depth >= chain.length) {
    throw new ImageError("ERR_OUT_OF_RANGE", `Layer ${depth} is not in the backing chain (${chain.length - 1} backing files)`, {
      format: image.format,
    });
  }
  const size = image.size;
  const chunk = Math.max(512, options.chunkSize ?? 1 << 20);
  let bytesCopied = 0;
  const signal = options.signal;
  throwIfAborted(signal);
  const report = progressReporter(size, options.onProgress);
  const target = await options.openWritable(chain[depth]);
  try {
    if (target.size < size) {
      if (!target.resize) {
        throw new ImageError("ERR_UNSUPPORTED_FEATURE", `This image format (${target.format}) does not support resizing`, {
          format: target.format,
        });
      }
      await target.resize(size);
    }
    report(0);
    for await (const e of image.extents(0, size)) {
      throwIfAborted(signal);
      if (e.depth < depth) {
        if (e.zero && !e.data) {
          await target.writeZeroes(e.offset, e.length);
        } else {
          for (let pos = e.offset; pos < e.offset + e.length; pos += chunk) {
            throwIfAborted(signal);
            const n = Math.min(chunk, e.offset + e.length - pos);
            await target.write(pos, await image.read(pos, n));
            bytesCopied += n;
            report(pos + n);
          }
        }
      }
      report(e.offset + e.length);
    }
  } finally {
    try {
      await target.flush();
    } finally {
      await target.close();
    }
  }
  let emptied = false;
  if (!options.keepData && depth === 1 && image.capabilities.makeEmpty && image.makeEmpty) {
    await image.makeEmpty();
    await image.flush();
    emptied = true;
  }
  report(size);
  return { bytesCopied, emptied };
}
