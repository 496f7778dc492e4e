// Waiting in tests: poll a condition until it holds, or fail saying what was awaited. One loop
// for every test (unit tests poll every few milliseconds, daemon tests every few hundred).

/** Polls `cond` every `everyMs` until it is true; throws after `timeoutMs`, naming `what`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5_000, everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(everyMs);
  }
}
