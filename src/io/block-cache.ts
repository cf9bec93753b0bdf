/**
 * A bounded least-recently-used cache of fixed-size blocks of a remote file.
 * @module
 */

/** Blocks by index; the total of their lengths never exceeds `capacityBytes` after a `set`. */
export class BlockCache {
  // A Map iterates in insertion order: re-inserting on use keeps the oldest first.
  private readonly blocks = new Map<number, Uint8Array>();
  private bytes = 0;

  constructor(private readonly capacityBytes: number) {}

  /** The block, marked as just used; undefined when not cached. */
  get(index: number): Uint8Array | undefined {
    const block = this.blocks.get(index);
    if (block !== undefined) {
      this.blocks.delete(index);
      this.blocks.set(index, block);
    }
    return block;
  }

  /** Whether the block is cached (does not count as a use). */
  has(index: number): boolean {
    return this.blocks.has(index);
  }

  /** Stores a block (kept, not copied), evicting the least recently used ones beyond capacity. */
  set(index: number, block: Uint8Array): void {
    const old = this.blocks.get(index);
    if (old !== undefined) {
      this.bytes -= old.length;
      this.blocks.delete(index);
    }
    this.blocks.set(index, block);
    this.bytes += block.length;
    for (const [oldest, b] of this.blocks) {
      if (this.bytes <= this.capacityBytes || oldest === index) break;
      this.blocks.delete(oldest);
      this.bytes -= b.length;
    }
  }

  /** Bytes held now. */
  get sizeBytes(): number {
    return this.bytes;
  }

  clear(): void {
    this.blocks.clear();
    this.bytes = 0;
  }
}
