/**
 * The GOW format drivers: `gow1` and `gow2`, one per version (they differ in map size and data
 * offset). Probing requires this project's magic; an explicit `-f` also accepts a foreign magic
 * whose header passes the structural checks, with a warning (real Virtual Bridges images carry
 * a magic no source records).
 * @module
 */
import type { CreateContext, FormatDriver, FormatInstance, OpenContext, ProbeInput } from "../../core/format.js";
import { CorruptImageError, ImageError, UnsupportedFeatureError } from "../../errors.js";
import { readExact } from "../../io/helpers.js";
import { createGowImage } from "./create.js";
import { decodeGowHeader, gowHeaderProblem, gowMapProblem, readGowMap } from "./header.js";
import { GowInstance } from "./instance.js";
import { GOW_VERSIONS, GowHeaderCodec, gowMagicText, gowMagicVersion, type GowVersionLayout } from "./layout.js";
import { measureGow } from "./measure.js";

async function openGow(ctx: OpenContext, layout: GowVersionLayout): Promise<FormatInstance> {
  const name = layout.name;
  const file = ctx.file;
  const fileSize = await file.size();
  if (fileSize < GowHeaderCodec.size) {
    throw new CorruptImageError(`Cannot open ${name} image: the file of ${fileSize} bytes is shorter than the 12-byte header`, {
      format: name,
      structure: "header",
    });
  }
  const h = decodeGowHeader(await readExact(file, 0, GowHeaderCodec.size, "header", name));
  const magicText = gowMagicText(h.magic);
  const v = gowMagicVersion(h.magic);
  if (v !== undefined && v !== layout.version) {
    if (v === 1 || v === 2) {
      throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open ${name} image: the magic ${magicText} marks a GOW version ${v} image; open it as gow${v}`, {
        format: name,
        structure: "header",
        fileOffset: 0,
      });
    }
    throw new UnsupportedFeatureError(
      `Cannot open ${name} image: unsupported GOW version ${v} (magic ${magicText}); only versions 1 and 2 are known`,
      { format: name, structure: "header", fileOffset: 0 },
    );
  }
  const foreign = h.magic !== layout.magic;
  const refuse = (problem: string): never => {
    if (foreign) {
      throw new ImageError(
        "ERR_NOT_AN_IMAGE",
        `Cannot open ${name} image: the magic ${magicText} is not ${name}'s and the header fails the structural checks: ${problem}`,
        { format: name, structure: "header", fileOffset: 0 },
      );
    }
    throw new CorruptImageError(`Cannot open ${name} image: ${problem}`, { format: name, structure: "header" });
  };
  if (foreign && !ctx.explicitFormat) refuse("probing requires this project's magic");
  const problem = gowHeaderProblem(h, layout, fileSize, foreign);
  if (problem) refuse(problem);
  const map = await readGowMap(file, 0, h.size, name);
  const mapProblem = gowMapProblem(map, h.allocated);
  if (mapProblem) {
    if (foreign) refuse(mapProblem);
    // Opened read-write anyway so that `check -r all` can repair it; writes are refused until then.
    if (!ctx.readOnly) ctx.warn(`${name} image '${file.name}' is inconsistent (${mapProblem}): run 'check -r all' before writing`);
  }
  if (foreign) {
    ctx.warn(`Opening '${file.name}' as ${name} although its magic ${magicText} is unknown: the header passes the structural checks`);
  }
  return new GowInstance({
    file,
    layout,
    magic: h.magic,
    sizeBlocks: h.size,
    allocated: h.allocated,
    map,
    readOnly: ctx.readOnly,
    corrupt: mapProblem,
  });
}

function probeGow(input: ProbeInput, layout: GowVersionLayout): number {
  if (input.head.length < GowHeaderCodec.size) return 0;
  const h = decodeGowHeader(input.head);
  const v = gowMagicVersion(h.magic);
  // A "GOW" magic of an unknown version is claimed by gow1 so that opening it says why it fails.
  if (v !== undefined && v !== 1 && v !== 2) return layout.version === 1 ? 100 : 0;
  if (h.magic !== layout.magic) return 0;
  return h.size >= 1 && h.size <= layout.maxBlocks && h.allocated <= layout.maxBlocks ? 100 : 0;
}

function makeGowDriver(layout: GowVersionLayout): FormatDriver {
  return {
    name: layout.name,
    createOptions: [
      { name: "encryption", type: "bool", help: "Encrypt the image (GOW has no encryption: refused)", defaultText: "off" },
    ],
    supportsBacking: false,
    probe: (input) => probeGow(input, layout),
    open: (ctx) => openGow(ctx, layout),
    create: (ctx: CreateContext) => createGowImage(ctx, layout),
    measure: (input) => measureGow(input, layout),
  };
}

/** GOW version 1 (Win4Lin Pro, Win4BSD, Win4Solaris): disks up to 64 GiB. */
export const gow1Driver: FormatDriver = makeGowDriver(GOW_VERSIONS[1]);

/** GOW version 2 (VERDE user images): disks up to 256 GiB. */
export const gow2Driver: FormatDriver = makeGowDriver(GOW_VERSIONS[2]);
