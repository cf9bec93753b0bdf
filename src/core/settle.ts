/**
 * Waiting on several promises without leaving any unobserved.
 * @module
 */

/**
 * Waits until every promise in `promises` has settled, then rejects with the first rejection
 * (in array order) or resolves. Unlike `Promise.all`, it never returns while some of them still
 * run: a failed request does not leave reads writing into the caller's buffer afterwards, and no
 * later rejection goes unobserved.
 */
export async function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === "rejected") throw r.reason;
}

/**
 * Runs `body`, which pushes promises it starts into `started`; when `body` throws, waits for
 * those to settle before rethrowing, so none of them rejects later with nobody waiting on it.
 * On success, waits for them with {@link settleAll}.
 */
export async function settleAfter(started: Promise<unknown>[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    await Promise.allSettled(started);
    throw e;
  }
  await settleAll(started);
}
