// Lets a child `node` process run the TypeScript sources directly (the fuzz workers test src/,
// not a possibly stale dist/): `node --import ./test/fuzz/register-ts.mjs file.ts`.
import { register } from "node:module";

register("./ts-loader.mjs", import.meta.url);
