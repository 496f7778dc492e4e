// One read shared by the callers of a short window: a burst of callers that each need the same
// fresh-enough data (a first write placing many segments one after another) reads it once.

/**
 * Wraps `read` so that it runs at most once per `windowMs`: callers within the window get the
 * same promise. A read that fails is not shared: the next caller reads again.
 */
export function sharedRead<T>(read: () => Promise<T>, windowMs: number, clock: () => number = () => performance.now()): () => Promise<T> {
  let last: { readAt: number; value: Promise<T> } | null = null;
  return () => {
    const now = clock();
    if (last !== null && now - last.readAt < windowMs) return last.value;
    const entry = { readAt: now, value: read() };
    last = entry;
    entry.value.catch(() => {
      if (last === entry) last = null;
    });
    return entry.value;
  };
}
