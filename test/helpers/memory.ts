/** In-memory files for tests. */
import type { IoBackend } from "../../src/io/backend.js";
import type { MemoryBackend } from "../../src/io/memory.js";

/** `m` as a backend whose close() keeps it open, so a test can reopen the same bytes. */
export function keepOpen(m: MemoryBackend): IoBackend {
  return {
    name: m.name,
    capabilities: m.capabilities,
    read: (o, i) => m.read(o, i),
    write: (o, d) => m.write(o, d),
    flush: () => m.flush(),
    size: () => m.size(),
    truncate: (n) => m.truncate(n),
    close: async () => {},
  };
}
