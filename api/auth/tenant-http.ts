import { TideboxError } from '../../core/errors';
import { Caller, ProviderAnswerSchema } from '../../core/tenants';
import { Authenticator, keyDigest, KeyRing, presentedKey } from './api-key';
import type { AuthFailureLimiter } from './failure-limiter';
import type { AuthLog } from './tenant-file';

export interface HttpTenantProviderOptions {
  endpoint: string;
  ttlSeconds: number;
  /** Cap on a provider answer's own ttlSeconds. */
  maxTtlSeconds?: number;
  /** A refused key is refused again from memory this long. */
  rejectedTtlSeconds?: number;
  maxStaleSeconds: number;
  timeoutSeconds: number;
  /** Keys the provider refused, per client address: past the limit an unknown key is not looked up. */
  failures?: AuthFailureLimiter;
  authHeader?: string;
  authToken?: string;
  adminKeys: string[];
  log: AuthLog;
  /** Most keys kept in the cache; the oldest entry goes first. */
  maxEntries?: number;
}

interface Entry {
  caller: Caller;
  freshUntil: number;
  staleUntil: number;
}

/** The provider said this key is not valid (401). */
class KeyRejected extends Error {}

/**
 * Tenants from an HTTP service: `GET <endpoint>` with the caller's key in OPEN-SANDBOX-API-KEY →
 * `200 {name, namespace, ttlSeconds?}` or `401`. Answers are cached per key (by digest, never the key)
 * for their TTL; concurrent requests with one uncached key share a single lookup and its outcome.
 * While the provider is unreachable or failing, an expired answer is still served for up to
 * maxStaleSeconds; after that, or with nothing cached, the caller gets 503 — an outage is never
 * reported as a bad key. A 401 drops the cached answer at once, and is itself remembered for
 * rejectedTtlSeconds: a client cycling through unknown keys, or repeating one, cannot make every
 * request a provider call.
 */
export class HttpTenantProvider implements Authenticator {
  private readonly cache = new Map<string, Entry>();
  /** Digests of keys the provider refused, and until when that answer stands. */
  private readonly rejected = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<Caller>>();
  private readonly adminRing: KeyRing<Caller>;
  private readonly maxEntries: number;
  /** Provider calls made (for tests and metrics). */
  calls = 0;

  constructor(private readonly opts: HttpTenantProviderOptions) {
    this.adminRing = new KeyRing(opts.adminKeys.map((k): [string, Caller] => [k, { kind: 'admin' }]));
    this.maxEntries = opts.maxEntries ?? 10_000;
    if (!/^https:/i.test(opts.endpoint)) {
      opts.log.warn({ endpoint: opts.endpoint }, 'tenant provider endpoint is not HTTPS: API keys travel in clear text');
    }
  }

  async authenticate(presented: string | string[] | undefined, address = ''): Promise<Caller> {
    const key = presentedKey(presented);
    const admin = this.adminRing.find(key);
    if (admin) return admin;
    const id = keyDigest(key).toString('hex');
    const refusedUntil = this.rejected.get(id);
    if (refusedUntil !== undefined) {
      // Answered from memory: costs the provider nothing, so it does not count against the address.
      if (Date.now() < refusedUntil) throw new TideboxError('INVALID_API_KEY', 'invalid API key');
      this.rejected.delete(id);
    }
    const cached = this.cache.get(id);
    if (cached && Date.now() < cached.freshUntil) return cached.caller;

    let lookup = this.inflight.get(id);
    if (!lookup && this.opts.failures?.blocked(address))
      throw new TideboxError('TOO_MANY_REQUESTS', 'too many unknown API keys from this address; try again in a minute');
    if (!lookup) {
      lookup = this.lookup(key, id, address).finally(() => this.inflight.delete(id));
      this.inflight.set(id, lookup);
    }
    try {
      return await lookup;
    } catch (err) {
      if (err instanceof KeyRejected) throw new TideboxError('INVALID_API_KEY', 'invalid API key');
      const stale = this.cache.get(id);
      if (stale && Date.now() < stale.staleUntil) {
        this.opts.log.warn(
          { tenant: tenantOf(stale.caller), reason: (err as Error).message },
          'tenant provider unavailable: serving a cached answer past its TTL',
        );
        return stale.caller;
      }
      this.opts.log.error({ reason: (err as Error).message }, 'tenant provider unavailable');
      throw new TideboxError('TENANT_PROVIDER_UNAVAILABLE', 'the tenant provider is unavailable; try again later');
    }
  }

  async close(): Promise<void> {
    this.cache.clear();
    this.rejected.clear();
  }

  private async lookup(key: string, id: string, address: string): Promise<Caller> {
    this.calls++;
    const headers: Record<string, string> = { 'OPEN-SANDBOX-API-KEY': key, accept: 'application/json' };
    if (this.opts.authHeader && this.opts.authToken) headers[this.opts.authHeader] = this.opts.authToken;
    let res: Response;
    try {
      res = await fetch(this.opts.endpoint, { headers, signal: AbortSignal.timeout(this.opts.timeoutSeconds * 1000), redirect: 'error' });
    } catch (err) {
      throw new Error(
        `request failed: ${(err as Error).name === 'TimeoutError' ? `no answer within ${this.opts.timeoutSeconds} s` : (err as Error).message}`,
      );
    }
    if (res.status === 401) {
      await res.body?.cancel();
      this.cache.delete(id);
      // One refusal per provider call, counted against the address that made it (not each waiter).
      this.opts.failures?.failed(address);
      const rememberMs = (this.opts.rejectedTtlSeconds ?? 30) * 1000;
      if (rememberMs > 0) {
        this.rejected.set(id, Date.now() + rememberMs);
        while (this.rejected.size > this.maxEntries) this.rejected.delete(this.rejected.keys().next().value as string);
      }
      throw new KeyRejected();
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`provider answered ${res.status}`);
    }
    const parsed = ProviderAnswerSchema.safeParse(await res.json().catch(() => undefined));
    if (!parsed.success) throw new Error(`provider answer is not {name, namespace, ttlSeconds}: ${parsed.error.issues[0]?.message}`);
    const caller: Caller = {
      kind: 'tenant',
      tenant: parsed.data.name,
      namespace: parsed.data.namespace,
      ...(parsed.data.quotas ? { quotas: parsed.data.quotas } : {}),
    };
    const now = Date.now();
    const ttlSeconds = Math.min(parsed.data.ttlSeconds ?? this.opts.ttlSeconds, this.opts.maxTtlSeconds ?? Infinity);
    const freshUntil = now + ttlSeconds * 1000;
    this.cache.delete(id); // re-insert at the end: Map order is the eviction order
    this.cache.set(id, { caller, freshUntil, staleUntil: freshUntil + this.opts.maxStaleSeconds * 1000 });
    while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
    return caller;
  }
}

const tenantOf = (caller: Caller) => (caller.kind === 'tenant' ? caller.tenant : 'admin');
