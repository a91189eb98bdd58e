/** An AbortController that also aborts when `parent` does; `dispose` unlinks it. */
export function linkedAbort(parent?: AbortSignal): { signal: AbortSignal; abort: (reason?: unknown) => void; dispose: () => void } {
  const ac = new AbortController();
  const onAbort = (): void => ac.abort(parent?.reason);
  if (parent?.aborted) ac.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    abort: (reason?: unknown) => {
      if (!ac.signal.aborted) ac.abort(reason);
    },
    dispose: () => parent?.removeEventListener('abort', onAbort),
  };
}

/** Calls `fn` every `ms` until stopped; never keeps the process alive. */
export function everyInterval(ms: number, fn: () => void): { stop: () => void } {
  const t = setInterval(fn, ms);
  t.unref();
  return { stop: () => clearInterval(t) };
}

/** Maps with at most `limit` calls in flight, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
