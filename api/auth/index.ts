import type { Config } from '../../core/config';
import { Authenticator, createApiKeyAuth } from './api-key';
import { AuthFailureLimiter } from './failure-limiter';
import { AuthLog, FileTenantProvider } from './tenant-file';
import { HttpTenantProvider } from './tenant-http';

export { API_KEY_HEADER } from './api-key';
export type { Authenticator } from './api-key';

/** The authenticator the config asks for: a tenant provider with [tenants], else the single key. */
export async function createAuthenticator(config: Config, log: AuthLog): Promise<Authenticator> {
  const t = config.tenants;
  if (!t) return createApiKeyAuth(config.server.apiKey, config.kubernetes.namespace);
  if (t.provider === 'file') {
    return FileTenantProvider.open({ path: t.file!, adminKeys: t.adminKeys, pollSeconds: t.pollSeconds, log });
  }
  return new HttpTenantProvider({
    endpoint: t.endpoint!,
    ttlSeconds: t.ttlSeconds,
    maxTtlSeconds: t.maxTtlSeconds,
    rejectedTtlSeconds: t.rejectedTtlSeconds,
    failures: new AuthFailureLimiter(config.server.unauthenticatedPerMinute),
    maxStaleSeconds: t.maxStaleSeconds,
    timeoutSeconds: t.timeoutSeconds,
    authHeader: t.authHeader,
    authToken: t.authToken,
    adminKeys: t.adminKeys,
    log,
  });
}
