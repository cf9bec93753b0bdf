// The host APIs that Node ≥ 20, Deno and browsers all provide, declared as narrowly as the
// runtime-neutral code uses them (tsconfig.neutral.json has only the ES2022 library). Add a
// member here only when every one of those runtimes has it: this list is the contract.
export {};

declare global {
  /** Bytes or a view of them (DOM's BufferSource). */
  type NeutralBufferSource = ArrayBuffer | ArrayBufferView;

  /** WHATWG Encoding: UTF-8 encoding. */
  class TextEncoder {
    encode(input?: string): Uint8Array<ArrayBuffer>;
  }

  /** WHATWG Encoding: decoding of UTF-8, UTF-16LE/BE, latin1. */
  class TextDecoder {
    constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
    decode(input?: NeutralBufferSource, options?: { stream?: boolean }): string;
  }

  /** Base64 to a binary string (HTML; Node ≥ 16, Deno). */
  function atob(data: string): string;
  /** A binary string to base64. */
  function btoa(data: string): string;

  /** High Resolution Time: a monotonic clock in milliseconds. */
  var performance: {
    now(): number;
  };

  /** DOM's AbortSignal, as the operations read it (Node ≥ 15, Deno, browsers). */
  interface AbortSignal {
    readonly aborted: boolean;
    readonly reason: any;
    addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
    removeEventListener(type: "abort", listener: () => void): void;
  }

  /** WebIDL's DOMException (Node ≥ 17, Deno, browsers): the default abort reason. */
  class DOMException extends Error {
    constructor(message?: string, name?: string);
  }

  /** HTML timers (every runtime has them; the return value is opaque). */
  function setTimeout(callback: () => void, ms?: number): unknown;
  function clearTimeout(handle: unknown): void;

  /** WebCrypto, only the random source. */
  var crypto: {
    getRandomValues<T extends ArrayBufferView | null>(array: T): T;
  };

  /** WHATWG Streams: the writable side, as the streaming layer drives it. */
  interface WritableStreamDefaultWriter<W> {
    readonly ready: Promise<undefined>;
    readonly desiredSize: number | null;
    write(chunk: W): Promise<void>;
    close(): Promise<void>;
    abort(reason?: unknown): Promise<void>;
  }
  class WritableStream<W> {
    constructor(sink?: { write?(chunk: W): void | Promise<void>; close?(): void | Promise<void>; abort?(reason: unknown): void | Promise<void> });
    getWriter(): WritableStreamDefaultWriter<W>;
  }

  /** WHATWG Streams: a pull source. */
  interface ReadableStreamDefaultController<R> {
    enqueue(chunk: R): void;
    close(): void;
    error(reason?: unknown): void;
  }
  class ReadableStream<R> {
    constructor(
      source: { pull?(controller: ReadableStreamDefaultController<R>): void | Promise<void>; cancel?(reason?: unknown): void | Promise<void> },
      strategy?: { highWaterMark?: number },
    );
  }

  /** File API: a Blob made from parts. */
  type BlobPart = NeutralBufferSource | Blob | string;
  class Blob {
    constructor(parts?: BlobPart[], options?: { type?: string });
    readonly size: number;
    readonly type: string;
    arrayBuffer(): Promise<ArrayBuffer>;
  }

  /** The WebAssembly JS API, as far as the kernel loader uses it. */
  namespace WebAssembly {
    class Module {
      constructor(bytes: NeutralBufferSource);
    }
    class Memory {
      constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
      readonly buffer: ArrayBuffer;
      grow(delta: number): number;
    }
    class Instance {
      constructor(module: Module, importObject?: Imports);
      readonly exports: Exports;
    }
    type ImportValue = Memory | number | ((...args: never[]) => unknown);
    type Imports = Record<string, Record<string, ImportValue>>;
    type Exports = Record<string, unknown>;
    interface WebAssemblyInstantiatedSource {
      instance: Instance;
      module: Module;
    }
    function compile(bytes: NeutralBufferSource): Promise<Module>;
    function validate(bytes: NeutralBufferSource): boolean;
    function instantiate(module: Module, importObject?: Imports): Promise<Instance>;
    function instantiate(bytes: NeutralBufferSource, importObject?: Imports): Promise<WebAssemblyInstantiatedSource>;
  }
}
