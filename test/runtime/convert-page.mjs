// The web page of the convert scenario: what an app does with vdisk, bundled by esbuild for the
// browser (convert.test.ts) and loaded in headless Chromium. The source arrives as a File, the
// targets live in MemoryBackends, and their bytes go back to the test as base64 for qemu-img.
import * as vdisk from "vdisk";
import { CONVERT_TARGET, convertScenario } from "./scenario.mjs";

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

globalThis.runConvertScenario = async (sourceUrl) => {
  const res = await fetch(sourceUrl);
  if (!res.ok) throw new Error(`Could not fetch ${sourceUrl}: HTTP ${res.status}`);
  const file = new File([await res.arrayBuffer()], "source.qcow2");
  const targets = {};
  const report = await convertScenario(
    vdisk,
    () => vdisk.openImage(file),
    (name, size) => vdisk.createImage((targets[name] = new vdisk.MemoryBackend()), { ...CONVERT_TARGET, size }),
    // Reopened from a Blob of the bytes, as a page offering the image for download would.
    (name) => vdisk.openImage(new Blob([targets[name].bytes().slice()]), { format: CONVERT_TARGET.format }),
  );
  return {
    runtime: "chromium",
    ...report,
    images: { full: toBase64(targets.full.bytes()), aborted: toBase64(targets.aborted.bytes()) },
  };
};
