import { createHash, timingSafeEqual } from 'node:crypto';
import { TideboxError } from '../../core/errors';

export const API_KEY_HEADER = 'open-sandbox-api-key';
export const DEFAULT_TENANT = 'default';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Single-key authentication. Keys are compared as SHA-256 digests with timingSafeEqual, so the
 * comparison takes the same time whatever the key's length or first differing byte. With no key
 * configured every caller is the default tenant (the server then binds loopback only).
 */
export function createApiKeyAuth(apiKey: string | undefined) {
  const expected = apiKey === undefined ? undefined : digest(apiKey);
  return (presented: string | string[] | undefined): string => {
    if (!expected) return DEFAULT_TENANT;
    const value = Array.isArray(presented) ? presented[0] : presented;
    if (!value) throw new TideboxError('MISSING_API_KEY', 'missing OPEN-SANDBOX-API-KEY header');
    if (!timingSafeEqual(digest(value), expected)) throw new TideboxError('INVALID_API_KEY', 'invalid API key');
    return DEFAULT_TENANT;
  };
}
