/**
 * The CLI's one door to the HTTP API: TIDEBOX_URL (default http://127.0.0.1:8080) and the key from
 * OPEN_SANDBOX_API_KEY (the SDKs' variable) or TIDEBOX_API_KEY. Failures are typed so the exit code
 * says what kind of failure it was (see main.ts).
 */

/** Bad usage (shows the usage text) or a request the API refused (4xx): exit 2. */
export class UsageError extends Error {}
export class RefusedError extends Error {}
/** The API could not be reached or failed (5xx): exit 3. */
export class UnavailableError extends Error {}
/** The operation ran and did not succeed (a sandbox Failed, a wait timed out): exit 1. */
export class OperationFailed extends Error {}

export const baseUrl = (process.env.TIDEBOX_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const apiKey = () => process.env.OPEN_SANDBOX_API_KEY || process.env.TIDEBOX_API_KEY || undefined;

/** One call; the parsed JSON body (undefined for 204). */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const key = apiKey();
  if (key) headers['OPEN-SANDBOX-API-KEY'] = key;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/v1${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    throw new UnavailableError(`cannot reach ${baseUrl}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let parsed: (T & { code?: string; message?: string }) | undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const what = `${method} ${path} → ${res.status} ${parsed?.code ?? ''}: ${parsed?.message ?? (text.slice(0, 200) || res.statusText)}`;
    throw res.status >= 500 ? new UnavailableError(what) : new RefusedError(what);
  }
  return parsed as T;
}

/** Every page of a paged list (at most `max` items). */
export async function listAll<T>(path: string, query: URLSearchParams, max = 10_000): Promise<T[]> {
  const items: T[] = [];
  for (let page = 1; items.length < max; page++) {
    const q = new URLSearchParams(query);
    q.set('page', String(page));
    q.set('pageSize', '200');
    const r = await api<{ items: T[]; pagination?: { hasNextPage: boolean } }>('GET', `${path}?${q}`);
    items.push(...r.items);
    if (!r.pagination?.hasNextPage) break;
  }
  return items.slice(0, max);
}

/** Poll `read` until `done` says so (its value) or `timeoutMs` passes (OperationFailed). */
export async function follow<T>(
  read: () => Promise<T>,
  done: (v: T) => boolean,
  { timeoutMs, what, onChange }: { timeoutMs: number; what: string; onChange?: (v: T) => void },
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    onChange?.(v);
    if (done(v)) return v;
    if (Date.now() > deadline) throw new OperationFailed(`${what}: still not there after ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
