// The streaming scenario in headless Chromium: convertToStream into a WritableStream that
// hashes, convertToBlob reopened with openImage(blob), deviceStream, abort half-way.
import { describe, it } from "vitest";
import * as vdisk from "vdisk";
import { expectStreamReport, type StreamReport } from "./stream-expect.js";
// @ts-expect-error plain JS module without declarations
import { streamScenario } from "./stream-scenario.mjs";

describe("Chromium streaming", () => {
  it("convertToStream into a hashing WritableStream, convertToBlob → openImage(blob), deviceStream, abort", async () => {
    const res = await fetch("/test/fixtures/pattern.raw");
    const file = new File([await res.arrayBuffer()], "pattern.raw");
    const open = () => vdisk.openImage(file, { format: "raw" });
    const openBlob = (blob: Blob, format: string) => vdisk.openImage(blob, { format });
    const { report } = (await streamScenario(vdisk, open, openBlob)) as { report: StreamReport };
    expectStreamReport("chromium", report);
  });
});
