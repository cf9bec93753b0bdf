/**
 * The page: picks the image (drop, file chooser, URL), shows what the worker reports (info
 * table, allocation map, check), and drives conversions with progress and Cancel. All image
 * work happens in worker.ts.
 * @module
 */
import type { MapRun, Reply, Request, WritableFormat } from "./protocol.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
const send = (req: Request): void => worker.postMessage(req);

let formats: WritableFormat[] = [];
let runs: MapRun[] = [];
let diskSize = 0;
let view = { start: 0, length: 1 };

function showError(message: string | undefined): void {
  const box = $("error");
  box.hidden = !message;
  box.textContent = message ?? "";
}

function bytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, "")} ${units[i]}`;
}

function openSource(req: Extract<Request, { type: "open" }>): void {
  showError(undefined);
  $("details").hidden = true;
  $("check").textContent = "Checking…";
  $("result").textContent = "";
  document.body.dataset.state = "opening";
  send(req);
}

function fillInfo(info: Record<string, unknown>): void {
  const table = $<HTMLTableElement>("info");
  table.replaceChildren();
  const add = (key: string, value: unknown): void => {
    const row = table.insertRow();
    row.insertCell().textContent = key;
    const text = typeof value === "number" && /size/.test(key) ? `${bytes(value)} (${value} bytes)` : typeof value === "object" ? JSON.stringify(value) : String(value);
    row.insertCell().textContent = text;
  };
  for (const [k, v] of Object.entries(info)) {
    if (v === undefined || k === "backing-image") continue;
    if (k === "format-specific" && v && typeof v === "object" && "data" in v) {
      for (const [sk, sv] of Object.entries((v as { data: Record<string, unknown> }).data)) add(`  ${sk}`, sv);
    } else add(k, v);
  }
}

const COLORS: Record<MapRun["kind"], string> = { data: "#2f6fdb", zero: "#9bd49b", unallocated: "#e6e6e6", backing: "#e3a33b" };

function drawMap(): void {
  const canvas = $<HTMLCanvasElement>("map");
  const width = canvas.clientWidth || 960;
  canvas.width = width * devicePixelRatio;
  canvas.height = 160 * devicePixelRatio;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = COLORS.unallocated;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const scale = canvas.width / view.length;
  for (const r of runs) {
    const end = r.start + r.length;
    if (end <= view.start || r.start >= view.start + view.length || r.kind === "unallocated") continue;
    const x0 = Math.max(0, (r.start - view.start) * scale);
    const x1 = Math.min(canvas.width, (end - view.start) * scale);
    ctx.fillStyle = COLORS[r.kind];
    // At least one pixel: a single cluster of a huge disk stays visible.
    ctx.fillRect(Math.floor(x0), 0, Math.max(1, Math.ceil(x1 - x0)), canvas.height);
  }
  $("map-range").textContent = `${bytes(view.start)} – ${bytes(view.start + view.length)} of ${bytes(diskSize)}; click to zoom in there.`;
  canvas.dataset.ready = "true";
}

function zoom(factor: number, center = view.start + view.length / 2): void {
  const length = Math.min(diskSize, Math.max(4096, view.length * factor));
  const start = Math.min(Math.max(0, center - length / 2), diskSize - length);
  view = { start, length };
  drawMap();
}

worker.onmessage = (event: MessageEvent<Reply>) => {
  const msg = event.data;
  switch (msg.type) {
    case "formats": {
      formats = msg.formats;
      const select = $<HTMLSelectElement>("format");
      select.replaceChildren(...formats.map((f) => new Option(f.name, f.name, f.name === "qcow2", f.name === "qcow2")));
      $("opfs-label").hidden = !msg.opfs;
      select.dispatchEvent(new Event("change"));
      break;
    }
    case "opened":
      $("image-name").textContent = `— ${msg.name}`;
      fillInfo(msg.info);
      runs = msg.map;
      diskSize = Math.max(1, msg.size);
      view = { start: 0, length: diskSize };
      $("details").hidden = false;
      drawMap();
      if (msg.mapTruncated) $("map-range").textContent += " (map shortened: too many extents)";
      document.body.dataset.state = "opened";
      break;
    case "checked":
      $("check").textContent = !msg.supported
        ? "This format has no consistency check."
        : msg.corruptions === 0 && msg.leaks === 0
          ? "No errors were found on the image."
          : `${msg.corruptions} corruption(s) and ${msg.leaks} leaked cluster(s) found. ${msg.messages.slice(0, 5).join(" ")}`;
      $("check").dataset.done = "true";
      break;
    case "progress": {
      const bar = $<HTMLProgressElement>("progress");
      bar.hidden = false;
      bar.max = Math.max(1, msg.total);
      bar.value = msg.done;
      break;
    }
    case "converted": {
      converting(false);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(msg.blob);
      link.download = msg.name;
      link.id = "download";
      link.textContent = `Download ${msg.name} (${bytes(msg.blob.size)})`;
      $("result").replaceChildren(link, msg.opfs ? " — also kept in this browser's storage." : "");
      break;
    }
    case "cancelled":
      converting(false);
      $("result").textContent = "The conversion was cancelled.";
      break;
    case "error":
      converting(false);
      document.body.dataset.state = "error";
      showError(msg.message);
      break;
  }
};
worker.onerror = (e) => showError(`The worker failed: ${e.message}`);

function converting(on: boolean): void {
  $<HTMLButtonElement>("convert").disabled = on;
  $<HTMLButtonElement>("cancel").disabled = !on;
  if (!on) $<HTMLProgressElement>("progress").hidden = true;
}

$("file").addEventListener("change", () => {
  const file = $<HTMLInputElement>("file").files?.[0];
  if (file) openSource({ type: "open", file });
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer?.files[0];
  if (file) openSource({ type: "open", file });
});
$("url-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const url = $<HTMLInputElement>("url").value.trim();
  if (!/^https?:\/\//i.test(url)) showError("Enter an address that starts with http:// or https://.");
  else openSource({ type: "open", url });
});
$("format").addEventListener("change", () => {
  const f = formats.find((x) => x.name === $<HTMLSelectElement>("format").value);
  $("option-help").textContent = f && f.options.length ? `Options: ${f.options.map((o) => o.name).join(", ")}` : "";
});
$("convert-form").addEventListener("submit", (e) => {
  e.preventDefault();
  showError(undefined);
  $("result").textContent = "";
  converting(true);
  send({
    type: "convert",
    format: $<HTMLSelectElement>("format").value,
    options: $<HTMLInputElement>("options").value,
    compress: $<HTMLInputElement>("compress").checked,
    keepInOpfs: $<HTMLInputElement>("opfs").checked,
  });
});
$("cancel").addEventListener("click", () => send({ type: "cancel" }));
$("zoom-in").addEventListener("click", () => zoom(0.25));
$("zoom-out").addEventListener("click", () => zoom(4));
$("zoom-reset").addEventListener("click", () => zoom(Infinity, 0));
$("map").addEventListener("click", (e) => {
  const canvas = e.currentTarget as HTMLCanvasElement;
  zoom(0.25, view.start + (e.offsetX / canvas.clientWidth) * view.length);
});
addEventListener("resize", () => runs.length && drawMap());

// Works offline after the first load: the service worker keeps the page's files.
if ("serviceWorker" in navigator && location.protocol !== "file:") navigator.serviceWorker.register("sw.js").catch(() => undefined);
