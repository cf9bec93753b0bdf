// Type-checked by `deno check` (runtimes.test.ts) against Deno's own declarations: the subset of
// the Deno API that src/adapters/deno/deno-api.ts declares must be what Deno really provides.
import type { DenoFsFile, DenoNamespace } from "../../src/adapters/deno/deno-api.ts";

export const api: DenoNamespace = Deno;
export async function file(path: string): Promise<DenoFsFile> {
  return await Deno.open(path, { read: true });
}
