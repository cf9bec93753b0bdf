/**
 * qemu-img's `-p` progress line: "    (45.00/100%)" rewritten in place with a carriage return,
 * redrawn when it advances by at least 1%.
 * @module
 */
import { formatF } from "../ops/number-format.js";
import type { ProgressCallback } from "../ops/progress.js";
import type { CommandContext } from "./context.js";

/** A progress printer; `done()` ends the line. Prints nothing when `enabled` is false. */
export interface ProgressPrinter {
  readonly update: ProgressCallback;
  done(): void;
}

/** A qemu-img style progress printer on `ctx`'s stdout. */
export function progressPrinter(ctx: CommandContext, enabled: boolean): ProgressPrinter {
  let last = -1;
  const show = (pct: number): void => {
    ctx.out(`    (${formatF(pct, 2)}/100%)\r`);
    last = pct;
  };
  if (enabled) show(0);
  return {
    update: (done, total) => {
      if (!enabled) return;
      const pct = total > 0 ? Math.min(100, (done * 100) / total) : 100;
      if (pct - last >= 1 || (pct === 100 && last !== 100)) show(pct);
    },
    done: () => {
      if (!enabled) return;
      if (last !== 100) show(100);
      ctx.out("\n");
    },
  };
}
