// Watches a few directories of the metadata store and says only "something there changed": the
// caller re-reads what it needs (ReplicaHost's refresh), so a missed or merged event costs a
// little latency, never correctness, and a slow poll beside it covers a watch that broke. A
// compacted watch (or a store whose revision went back) is started again from now.
import type { MetaStore, Watch } from "../meta/store.ts";

export interface PrefixWatch {
  cancel(): void;
}

export function watchPrefixes(meta: MetaStore, prefixes: readonly string[], onChange: () => void): PrefixWatch {
  const watches = new Map<string, Watch>();
  let cancelled = false;
  const start = (prefix: string): void => {
    watches.get(prefix)?.cancel();
    if (cancelled) return;
    const w = meta.watch(
      prefix,
      {
        onCompacted: () => {
          // Events were lost: re-read (onChange) and watch again from now.
          queueMicrotask(() => start(prefix));
          onChange();
        },
      },
      (events) => {
        if (!cancelled && events.length > 0) onChange();
      },
    );
    watches.set(prefix, w);
  };
  for (const p of prefixes) start(p);
  return {
    cancel: () => {
      cancelled = true;
      for (const w of watches.values()) w.cancel();
      watches.clear();
    },
  };
}
