/**
 * A read shared for a short while: every caller within `ttlMs` of the first gets the same promise
 * (one round of Temporal or visibility calls for many requests or gauges); a rejected one is not
 * kept, so the next caller asks again. Per key: at most `maxKeys` are remembered (expired ones are
 * dropped first, then the oldest); the read gets the arguments of the call that started it.
 */
export function sharedReads<K, T, A extends unknown[] = []>(
  ttlMs: number,
  maxKeys: number,
  read: (key: K, ...args: A) => Promise<T>,
): (key: K, ...args: A) => Promise<T> {
  const entries = new Map<K, { at: number; value: Promise<T> }>();
  return (key, ...args) => {
    const now = Date.now();
    const hit = entries.get(key);
    if (hit && now - hit.at < ttlMs) return hit.value;
    entries.delete(key);
    if (entries.size >= maxKeys) for (const [k, e] of entries) if (now - e.at >= ttlMs) entries.delete(k);
    while (entries.size >= maxKeys) entries.delete(entries.keys().next().value as K);
    const entry = { at: now, value: read(key, ...args) };
    entries.set(key, entry);
    entry.value.catch(() => {
      if (entries.get(key) === entry) entries.delete(key);
    });
    return entry.value;
  };
}

/** One shared read (see sharedReads). */
export function sharedRead<T>(ttlMs: number, read: () => Promise<T>): () => Promise<T> {
  const shared = sharedReads<null, T>(ttlMs, 1, read);
  return () => shared(null);
}
