import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpTenantProvider } from '../../api/auth/tenant-http';
import { TideboxError } from '../../core/errors';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * The HTTP tenant provider against a real HTTP server on 127.0.0.1 that the test controls: which
 * keys it knows, whether it is up, how slowly it answers, and how many lookups it has served.
 */
class ProviderServer {
  readonly keys = new Map<string, { name: string; namespace: string; ttlSeconds?: number; quotas?: Record<string, unknown> }>();
  mode: 'up' | 'error' | 'hang' = 'up';
  delayMs = 0;
  calls = 0;
  lastAuth: string | undefined;
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/tenant`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.calls++;
    this.lastAuth = req.headers['x-provider-token'] as string | undefined;
    if (this.mode === 'hang') return; // never answers: the client's timeout must fire
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.mode === 'error') {
      res.writeHead(502).end('bad gateway');
      return;
    }
    const answer = this.keys.get(String(req.headers['open-sandbox-api-key']));
    if (!answer) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const KEY_A = 'tenant-a-key-0123456789';
const KEY_B = 'tenant-b-key-0123456789';
const KEY_C = 'tenant-c-key-0123456789';
const KEY_Q = 'tenant-q-key-0123456789';
const ADMIN = 'admin-key-0123456789abcdef';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as TideboxError).code;
  }
}

describe('HTTP tenant provider through the API (real stack)', () => {
  const provider = new ProviderServer();
  let stack: Stack;

  beforeAll(async () => {
    await provider.start();
    provider.keys.set(KEY_A, { name: 'team-a', namespace: 'ns-a' });
    stack = await Stack.start({
      config: {
        tenants: {
          provider: 'http',
          endpoint: provider.url,
          ttlSeconds: 60,
          maxStaleSeconds: 60,
          timeoutSeconds: 2,
          authHeader: 'X-Provider-Token',
          authToken: 'provider-secret-token',
          adminKeys: [ADMIN],
        },
        server: { unauthenticatedPerMinute: 20 },
      },
    });
  });
  afterAll(async () => {
    await stack?.destroy();
    await provider.stop();
  });

  it('when 50 requests arrive at once with one cold key, then the provider is asked exactly once and all are served', async () => {
    provider.delayMs = 300; // keep the lookup in flight while all 50 arrive
    const before = provider.calls;
    const results = await Promise.all(
      Array.from({ length: 50 }, () => stack.request('GET', '/v1/sandboxes', undefined, { 'OPEN-SANDBOX-API-KEY': KEY_A })),
    );
    provider.delayMs = 0;
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(provider.calls - before).toBe(1);
    expect(provider.lastAuth).toBe('provider-secret-token');
  });

  it('when the key is unknown, then 401; when the provider is down with nothing cached, then 503 and never 401', async () => {
    expect((await stack.request('GET', '/v1/sandboxes', undefined, { 'OPEN-SANDBOX-API-KEY': KEY_B })).status).toBe(401);
    provider.mode = 'error';
    try {
      // (Another unknown key: KEY_B's refusal is remembered, and answered 401 without asking.)
      const r = await stack.request('GET', '/v1/sandboxes', undefined, { 'OPEN-SANDBOX-API-KEY': KEY_C });
      expect(r.status).toBe(503);
      expect(r.body.code).toBe('AUTH::TENANT_PROVIDER_UNAVAILABLE');
      // Admin keys are config, not provider answers: they keep working during the outage.
      expect((await stack.request('GET', '/v1/sandboxes', undefined, { 'OPEN-SANDBOX-API-KEY': ADMIN })).status).toBe(200);
    } finally {
      provider.mode = 'up';
    }
  });

  it("when the provider's answer carries quotas, then they apply to that tenant", async () => {
    provider.keys.set(KEY_Q, { name: 'team-q', namespace: 'ns-q', quotas: { maxSandboxes: 1 } });
    const first = await stack.as(KEY_Q)('POST', '/v1/sandboxes', sandboxRequest());
    expect(first.status).toBe(202);
    const second = await stack.as(KEY_Q)('POST', '/v1/sandboxes', sandboxRequest());
    expect(second.status).toBe(429);
    expect(second.body.message).toBe('quota exceeded: maxSandboxes is 1 and 1 are live');
    expect((await stack.as(KEY_Q)('DELETE', `/v1/sandboxes/${first.body.id}`)).status).toBe(204);
  });

  it('when 1,000 requests carry one unknown key, then the provider is asked once', async () => {
    const before = provider.calls;
    const statuses: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => stack.as('unknown-key-0123456789abc')('GET', '/v1/sandboxes')));
      statuses.push(...answers.map((r) => r.status));
    }
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect(provider.calls - before).toBe(1);
  });

  it('when the API logs, then neither the caller key nor the provider token appears', async () => {
    const log = await waitFor('api log', async () => {
      const { readFileSync } = await import('node:fs');
      const text = readFileSync(`${stack.dataDir}/api.log`, 'utf8');
      return text.includes('tenant provider') ? text : undefined;
    });
    expect(log).not.toContain(KEY_A);
    expect(log).not.toContain('provider-secret-token');
  });

  // Last in this block: it uses up this address's allowance of refused keys for a minute.
  it('when one address cycles through unknown keys, then past the limit it gets 429 without a provider call; a known key still works', async () => {
    const before = provider.calls;
    const codes: string[] = [];
    for (let i = 0; i < 100; i++) codes.push((await stack.as(`made-up-key-${i}-0123456789`)('GET', '/v1/sandboxes')).body.code);
    // Earlier tests in this block already had a few keys refused from this address within the minute.
    const refused = codes.filter((c) => c === 'AUTH::INVALID_API_KEY').length;
    expect(refused).toBeGreaterThan(15);
    expect(refused).toBeLessThanOrEqual(20);
    expect(codes).toEqual([...Array(refused).fill('AUTH::INVALID_API_KEY'), ...Array(100 - refused).fill('AUTH::TOO_MANY_FAILURES')]);
    expect(provider.calls - before).toBe(refused);
    expect((await stack.as(KEY_A)('GET', '/v1/sandboxes')).status).toBe(200);
  });
});

describe('HTTP tenant provider cache (real HTTP server)', () => {
  const server = new ProviderServer();
  beforeAll(() => server.start());
  afterAll(() => server.stop());
  beforeEach(() => {
    server.mode = 'up';
    server.keys.clear();
    server.keys.set(KEY_A, { name: 'team-a', namespace: 'ns-a' });
  });

  const make = (ttlSeconds: number, maxStaleSeconds: number) =>
    new HttpTenantProvider({ endpoint: server.url, ttlSeconds, maxStaleSeconds, timeoutSeconds: 0.5, adminKeys: [], log: quiet });

  it('when the TTL passes, then one refresh serves every concurrent request', async () => {
    const p = make(1, 10);
    const first = Date.now();
    await expect(p.authenticate(KEY_A)).resolves.toEqual({ kind: 'tenant', tenant: 'team-a', namespace: 'ns-a' });
    const start = server.calls;
    for (let i = 0; i < 10; i++) await p.authenticate(KEY_A);
    expect(server.calls).toBe(start); // fresh: answered from the cache
    await waitFor('TTL to pass', () => Date.now() > first + 1100);
    server.delayMs = 200;
    await Promise.all(Array.from({ length: 20 }, () => p.authenticate(KEY_A)));
    server.delayMs = 0;
    expect(server.calls).toBe(start + 1);
  });

  it('when the provider answers with its own ttlSeconds, then that TTL is used', async () => {
    server.keys.set(KEY_B, { name: 'team-b', namespace: 'ns-b', ttlSeconds: 0 });
    const p = make(60, 10);
    await p.authenticate(KEY_B);
    await p.authenticate(KEY_B);
    expect(p.calls).toBe(2); // TTL 0: every request asks again
  });

  it('when the provider goes down, then the stale answer is served until maxStaleSeconds, then 503', async () => {
    const p = make(1, 2);
    const cachedAt = Date.now();
    await p.authenticate(KEY_A);
    server.mode = 'error';
    await waitFor('TTL to pass', () => Date.now() > cachedAt + 1100);
    await expect(p.authenticate(KEY_A)).resolves.toMatchObject({ tenant: 'team-a' }); // stale, provider was asked
    const asked = p.calls;
    expect(asked).toBeGreaterThanOrEqual(2);
    server.mode = 'hang'; // a provider that never answers counts as down too (timeout 0.5 s)
    await expect(p.authenticate(KEY_A)).resolves.toMatchObject({ tenant: 'team-a' });
    const ended = await waitFor(
      'stale window to end',
      async () => ((await codeOf(p.authenticate(KEY_A))) === 'AUTH::TENANT_PROVIDER_UNAVAILABLE' ? Date.now() : undefined),
      10_000,
      200,
    );
    // Served stale for TTL + maxStale = 3 s after caching, not less (the last stale answer came after 1.1 s).
    expect(ended - cachedAt).toBeGreaterThanOrEqual(3000);
    expect(ended - cachedAt).toBeLessThan(3000 + 1500);
  });

  it('when the provider answers 401 for a cached key, then the entry is evicted at once: no stale answer afterwards', async () => {
    const p = make(0, 60);
    await p.authenticate(KEY_A);
    server.keys.delete(KEY_A); // revoked
    expect(await codeOf(p.authenticate(KEY_A))).toBe('AUTH::INVALID_API_KEY');
    server.mode = 'error';
    // Without eviction the 60 s stale window would serve team-a here; the refusal is remembered instead.
    const asked = p.calls;
    expect(await codeOf(p.authenticate(KEY_A))).toBe('AUTH::INVALID_API_KEY');
    expect(p.calls).toBe(asked);
  });

  it("when the provider's ttlSeconds is above maxTtlSeconds, then the cap wins", async () => {
    server.keys.set(KEY_B, { name: 'team-b', namespace: 'ns-b', ttlSeconds: 3600 });
    const p = new HttpTenantProvider({
      endpoint: server.url,
      ttlSeconds: 60,
      maxTtlSeconds: 1,
      maxStaleSeconds: 0,
      timeoutSeconds: 1,
      adminKeys: [],
      log: quiet,
    });
    const cachedAt = Date.now();
    await p.authenticate(KEY_B);
    await p.authenticate(KEY_B);
    expect(p.calls).toBe(1);
    await waitFor('the capped TTL to pass', () => Date.now() > cachedAt + 1100);
    await p.authenticate(KEY_B);
    expect(p.calls).toBe(2);
  });

  it('when a shared lookup fails, then every waiter gets the error', async () => {
    const p = make(60, 0);
    server.mode = 'error';
    server.delayMs = 200;
    const codes = await Promise.all(Array.from({ length: 10 }, () => codeOf(p.authenticate(KEY_A))));
    server.delayMs = 0;
    expect(codes).toEqual(Array(10).fill('AUTH::TENANT_PROVIDER_UNAVAILABLE'));
    expect(p.calls).toBe(1);
  });

  it('when the endpoint is plain HTTP, then a warning says keys travel in clear text', () => {
    const warnings: string[] = [];
    new HttpTenantProvider({
      endpoint: server.url,
      ttlSeconds: 1,
      maxStaleSeconds: 1,
      timeoutSeconds: 1,
      adminKeys: [],
      log: { ...quiet, warn: (_o, m) => warnings.push(m) },
    });
    expect(warnings.join()).toMatch(/not HTTPS/);
  });
});
