/**
 * Streams: conversion into append-only sinks (pipes, `WritableStream`s, uploads, Blobs) through
 * the formats' sequential writers. (`deviceStream`, a disk as a `ReadableStream`, lives in core.)
 * @module
 */
export {
  convertToStream,
  prepareStreamWriter,
  streamableFormats,
  type ConvertToStreamOptions,
  type ConvertToStreamResult,
  type StreamProgress,
} from "./convert-to-stream.js";
export { convertToBlob, type ConvertToBlobOptions } from "./convert-to-blob.js";
export type { NodeWritableLike, StreamSink } from "./sink.js";
