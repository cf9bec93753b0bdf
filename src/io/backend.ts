/**
 * The byte-level storage contract every image file sits on.
 * @module
 */

/** What a backend can do beyond reading. */
export interface IoCapabilities {
  /** `write`, `truncate` and `flush` may be called. */
  readonly writable: boolean;
  /** Growing the file leaves holes that cost no space (a real file system, memory). */
  readonly sparse?: boolean;
}

/**
 * Bytes at offsets: a file, a Blob, a memory buffer, an HTTP resource.
 *
 * Contract: offsets and lengths are byte counts as `number` (exact to 2^53). Calls may run
 * concurrently; a backend must not reorder a `flush` before writes that completed earlier.
 */
export interface IoBackend {
  /** A label for messages: the path, the File name, or `memory`. */
  readonly name: string;
  readonly capabilities: IoCapabilities;
  /**
   * Reads up to `into.length` bytes at `offset` into `into` (which may be a view of Wasm memory)
   * and returns how many were read: fewer only when the end of the file is reached.
   */
  read(offset: number, into: Uint8Array): Promise<number>;
  /** Writes all of `data` at `offset`, growing the file if needed. Does not keep `data`. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes every write that completed before this call durable. */
  flush(): Promise<void>;
  /** The current length in bytes. */
  size(): Promise<number>;
  /** Sets the length; growing reads back as zeros. */
  truncate(size: number): Promise<void>;
  /** Releases the resource. Further calls fail. */
  close(): Promise<void>;
}

/** How a backend is asked to open a related file (a backing file, an extent). */
export interface OpenFileRequest {
  /** The name as the image stores it (may be relative to the image). */
  name: string;
  /** The backend of the image that names the file; relative names resolve against it. */
  relativeTo: IoBackend;
  /** Open for writing as well as reading. */
  writable: boolean;
  /** Why the file is opened: `backing`, `data-file`, `extent`, `parent`. */
  purpose: string;
  /**
   * Create the file, or empty it if it exists (an external data file made by `create`).
   * Implies `writable`. Openers that cannot create files ignore it and open an existing one.
   */
  create?: boolean;
  /**
   * Set by the `same-dir` policy: the opener must resolve symbolic links and refuse the file
   * unless its real path lies in the real directory of `relativeTo` (or below), so a link
   * beside the image cannot lead out of it. Openers of storage without links ignore it.
   */
  confineToDirectory?: boolean;
}

/**
 * Opens files that an image names. Supplied by a runtime entry (Node, Deno) and always
 * filtered through an {@link OpenPolicy} first.
 */
export type FileOpener = (request: OpenFileRequest) => Promise<IoBackend>;
