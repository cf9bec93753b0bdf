/**
 * The few Deno APIs the Deno adapter uses, declared here so the package type-checks without
 * Deno's own lib (and so a Node or browser build never refers to a global `Deno`).
 * @module
 */

/** `Deno.FileInfo`, the fields we read. */
export interface DenoFileInfo {
  readonly size: number;
  readonly isDirectory: boolean;
  /** 512-byte blocks allocated; `null` where the platform does not say. */
  readonly blocks: number | null;
  /** Regular file (false for FIFOs, devices, sockets, directories). */
  readonly isFile: boolean;
}

/** `Deno.FsFile`, the methods we call. */
export interface DenoFsFile {
  /** Reads into `p` at the current position; `null` at the end of the file. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p` at the current position; may write fewer bytes than given. */
  write(p: Uint8Array): Promise<number>;
  /** Moves the position; `whence` 0 = from the start. Returns the new position. */
  seek(offset: number, whence: 0): Promise<number>;
  truncate(len?: number): Promise<void>;
  stat(): Promise<DenoFileInfo>;
  syncData(): Promise<void>;
  close(): void;
}

/** `Deno.OpenOptions`, the flags we use. */
export interface DenoOpenOptions {
  read?: boolean;
  write?: boolean;
  create?: boolean;
  truncate?: boolean;
  mode?: number;
}

/** The part of the `Deno` namespace the adapter needs. */
export interface DenoNamespace {
  open(path: string, options?: DenoOpenOptions): Promise<DenoFsFile>;
  /** Follows symbolic links. */
  stat(path: string): Promise<DenoFileInfo>;
  /** The path with every symbolic link resolved. */
  realPath(path: string): Promise<string>;
  cwd(): string;
}

/** The global `Deno`, or a `TypeError` outside Deno. */
export function denoApi(): DenoNamespace {
  const deno = (globalThis as { Deno?: DenoNamespace }).Deno;
  if (!deno) throw new TypeError("The Deno file backend needs the Deno runtime (globalThis.Deno is missing)");
  return deno;
}
