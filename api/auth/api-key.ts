import { createHash, timingSafeEqual } from 'node:crypto';
import { TideboxError } from '../../core/errors';
import type { Caller } from '../../core/tenants';

export const API_KEY_HEADER = 'open-sandbox-api-key';

/** SHA-256 of a key: what we keep and compare instead of the key itself. */
export const keyDigest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * A set of keys, each with what it stands for. Lookup compares the presented key's digest with
 * *every* entry using timingSafeEqual and never stops early, so neither the key's content nor its
 * position in the set shows in the time taken.
 */
export class KeyRing<T> {
  private readonly entries: Array<{ digest: Buffer; value: T }>;

  constructor(entries: Iterable<[key: string, value: T]>) {
    this.entries = [...entries].map(([key, value]) => ({ digest: keyDigest(key), value }));
  }

  get size(): number {
    return this.entries.length;
  }

  find(key: string): T | undefined {
    const digest = keyDigest(key);
    let found: T | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && found === undefined) found = entry.value;
    }
    return found;
  }
}

/** The presented key, or 401 when none was sent. */
export function presentedKey(presented: string | string[] | undefined): string {
  const value = Array.isArray(presented) ? presented[0] : presented;
  if (!value) throw new TideboxError('MISSING_API_KEY', 'missing OPEN-SANDBOX-API-KEY header');
  return value;
}

export interface Authenticator {
  /** The caller a request's OPEN-SANDBOX-API-KEY header stands for (`address`: the client's); throws the 401/429/503 to answer. */
  authenticate(presented: string | string[] | undefined, address?: string): Promise<Caller>;
  close(): Promise<void>;
}

/**
 * Single-key authentication (no [tenants]): every caller is the default tenant, whose pods go to
 * `namespace` (kubernetes.namespace). With no key
 * configured the server binds loopback only.
 */
export function createApiKeyAuth(apiKey: string | undefined, namespace = 'default'): Authenticator {
  const defaultCaller: Caller = { kind: 'tenant', tenant: 'default', namespace };
  const ring = apiKey === undefined ? undefined : new KeyRing([[apiKey, defaultCaller]]);
  return {
    authenticate: async (presented) => {
      if (!ring) return defaultCaller;
      const caller = ring.find(presentedKey(presented));
      if (!caller) throw new TideboxError('INVALID_API_KEY', 'invalid API key');
      return caller;
    },
    close: async () => undefined,
  };
}
