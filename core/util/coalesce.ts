// One re-read at a time, however often it is asked for: the refreshes that watches and timers
// trigger (a burst of record changes is one event each) run one after the other, and every
// trigger that arrives while one runs is answered by a single run after it.

/**
 * Returns a trigger for `task`: it runs now, or once more right after the run under way (all
 * triggers during a run coalesce into that one). A failed run goes to `onError`.
 */
export function coalescing(task: () => Promise<void>, onError: (e: unknown) => void): () => void {
  let running = false;
  let again = false;
  const trigger = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    task()
      .catch(onError)
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          trigger();
        }
      });
  };
  return trigger;
}
