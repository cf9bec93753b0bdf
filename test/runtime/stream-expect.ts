// What every runtime's streaming report must show (see stream-scenario.mjs).
import { expect } from "vitest";
import { expected } from "./expect-report.js";

/** The report of stream-scenario.mjs. */
export interface StreamReport {
  sourceSha256: string;
  qcow2: {
    bytesWritten: number;
    received: number;
    closed: boolean;
    sha256: string;
    guestSha256: string;
    progressMonotonic: boolean;
    progressFirst: [number, number];
    progressLast: [number, number];
  };
  vmdk: { blobSize: number; guestSha256: string };
  deviceStreamSha256: string;
  abort: { runError?: string; sinkAbort?: string };
}

/** Checks a streaming report: every path gives pattern.raw's disk, the abort errors the sink. */
export function expectStreamReport(label: string, r: StreamReport): void {
  const want = expected.images["pattern.raw"].sha256;
  expect(r.sourceSha256, `${label}: the source`).toBe(want);
  expect(r.qcow2.closed, `${label}: the qcow2 sink was closed`).toBe(true);
  expect(r.qcow2.received, `${label}: bytes the sink received`).toBe(r.qcow2.bytesWritten);
  expect(r.qcow2.guestSha256, `${label}: the streamed qcow2 reopened`).toBe(want);
  expect(r.qcow2.progressMonotonic, `${label}: progress is monotonic`).toBe(true);
  expect(r.qcow2.progressFirst[0], `${label}: progress starts at 0`).toBe(0);
  expect(r.qcow2.progressLast[0], `${label}: progress ends at total`).toBe(r.qcow2.progressLast[1]);
  expect(r.vmdk.guestSha256, `${label}: the vmdk Blob reopened`).toBe(want);
  expect(r.deviceStreamSha256, `${label}: deviceStream`).toBe(want);
  expect(r.abort.runError, `${label}: the aborted run rejects`).toBe("AbortError");
  expect(r.abort.sinkAbort, `${label}: the aborted run aborts the sink`).toBe("AbortError");
}
