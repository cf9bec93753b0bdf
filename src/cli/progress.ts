/**
 * qemu-img's `-p` progress line: "    (45.00/100%)" rewritten in place with a carriage return,
 * redrawn when it advances by at least 1%.
 * @module
 */
import { formatF } from "../ops/number-format.js";
import type { Progress, ProgressListener } from "../ops/progress.js";
import type { CommandContext } from "./context.js";

/** A progress printer; `done()` ends the line. Prints nothing when `enabled` is false. */
export interface ProgressPrinter {
  readonly update: ProgressListener;
  /** Prints the current line once more (SIGUSR1, as qemu-img). */
  report(): void;
  done(): void;
}

/** A qemu-img style progress printer on `ctx`'s stdout. */
export function progressPrinter(ctx: CommandContext, enabled: boolean): ProgressPrinter {
  let last = -1;
  let current = 0;
  const show = (pct: number): void => {
    ctx.out(`    (${formatF(pct, 2)}/100%)\r`);
    last = pct;
  };
  if (enabled) show(0);
  return {
    update: ({ done, total }: Progress) => {
      const pct = total > 0 ? Math.min(100, (done * 100) / total) : 100;
      current = pct;
      if (!enabled) return;
      if (pct - last >= 1 || (pct === 100 && last !== 100)) show(pct);
    },
    report: () => {
      ctx.out(`    (${formatF(current, 2)}/100%)\n`);
    },
    done: () => {
      if (!enabled) return;
      if (last !== 100) show(100);
      ctx.out("\n");
    },
  };
}
