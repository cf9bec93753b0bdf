/**
 * Bounded problem lists for `check`: a hostile image can hold millions of bad entries, and a
 * check keeps counting them all but keeps only the first lines, plus one line that says how many
 * more there were.
 * @module
 */

/** Problem lines a check keeps; later ones are counted in a final summary line. */
export const CHECK_MESSAGE_LIMIT = 1000;

const omitted = new WeakMap<string[], number>();

/**
 * Appends `line` to `messages` unless `CHECK_MESSAGE_LIMIT` lines are there already; past the
 * limit the last element is a summary ("… N more problem lines not shown") kept up to date.
 * Pass a function to skip building lines that would not be kept.
 */
export function pushCheckMessage(messages: string[], line: string | (() => string)): void {
  if (messages.length < CHECK_MESSAGE_LIMIT) {
    messages.push(typeof line === "function" ? line() : line);
    return;
  }
  const n = (omitted.get(messages) ?? 0) + 1;
  omitted.set(messages, n);
  messages[CHECK_MESSAGE_LIMIT] = `... ${n} more problem line${n === 1 ? "" : "s"} not shown`;
}

/** Appends every line of `lines` to `messages` under the same bound. */
export function pushCheckMessages(messages: string[], lines: readonly string[]): void {
  for (const l of lines) pushCheckMessage(messages, l);
}
