/**
 * The HTTP layer alone: the real Fastify app (routes, validation, auth, error mapping) through
 * app.inject, with fake services behind it. What a request turns into (or that it never reaches a
 * service) and how every failure kind reads on the wire.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app';
import { MAX_CLIENT_EVENT_NAMES } from '../../api/metrics';
import type { ApiServices } from '../../api/temporal';
import { type ConfigInput, parseConfig } from '../../core/config';
import { ErrorCodes, type ErrorKind, TideboxError } from '../../core/errors';
import type { SandboxView } from '../../core/sandbox';
import type { SnapshotView } from '../../core/snapshots';

type Calls = Array<{ method: string; args: unknown[] }>;

/** Services whose every method records its call and throws unless the test gave an implementation. */
function fakeServices(given: { [K in keyof ApiServices]?: Partial<ApiServices[K]> } = {}): { services: ApiServices; calls: Calls } {
  const calls: Calls = [];
  // No pools unless a test says otherwise (/metrics lists them).
  const impl = { ...given, pools: { list: async () => [], ...given.pools } };
  const group = (name: keyof ApiServices) =>
    new Proxy({} as Record<string, unknown>, {
      get:
        (_target, prop: string) =>
        async (...args: unknown[]) => {
          calls.push({ method: `${name}.${prop}`, args });
          const fn = (impl[name] as Record<string, ((...a: unknown[]) => unknown) | undefined> | undefined)?.[prop];
          if (!fn) throw new Error(`unexpected call ${name}.${prop}`);
          return fn(...args);
        },
    });
  const services: Record<string, unknown> = Object.fromEntries(
    (['sandboxes', 'snapshots', 'mounts', 'renewSchedules', 'workflows', 'pools'] as const).map((n) => [n, group(n)]),
  );
  // Quotas: nothing refused, no tenant seen (what /metrics reads), unless a test says otherwise.
  services.quotas = { refusals: () => new Map(), tenantsSeen: () => new Set(), ...impl.quotas };
  return { services: services as unknown as ApiServices, calls };
}

const VIEW: SandboxView = {
  id: 'sb-1',
  tenant: 'default',
  workflowId: 'sandbox/sb-1',
  hostId: 'local',
  image: { uri: 'busybox' },
  entrypoint: ['sleep', '1'],
  metadata: { team: 'a' },
  status: { state: 'Running', lastTransitionAt: '2026-01-01T00:00:00.000Z' },
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-01T01:00:00.000Z',
  containerId: 'c1',
  network: { hostNetwork: false, ports: { '8080': 32080 }, host: '127.0.0.1' },
};

const apps: FastifyInstance[] = [];
async function app(services: ApiServices, config: ConfigInput = {}): Promise<FastifyInstance> {
  const built = await buildApp({ config: parseConfig(config), services, logger: false });
  apps.push(built);
  return built;
}
afterAll(async () => {
  for (const a of apps) await a.close();
});

const json = (body: unknown) => ({ payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const createBody = {
  image: { uri: 'busybox' },
  entrypoint: ['sleep', '60'],
  timeout: 600,
  resourceLimits: { cpu: '500m', memory: '256Mi' },
};

describe('create', () => {
  it.each([
    ['no image and no snapshot', { entrypoint: ['x'] }, 'image (image.uri) or snapshotId is required'],
    ['a timeout below the minimum', { ...createBody, timeout: 5 }, 'timeout must be at least 60 seconds'],
    ['a CPU quantity that is not one', { ...createBody, resourceLimits: { cpu: 'lots' } }, 'is not a CPU quantity'],
    ['a metadata key under a reserved prefix', { ...createBody, metadata: { 'tidebox.io/owner': 'x' } }, 'reserved prefix'],
    ['an image without an entrypoint', { image: { uri: 'busybox' } }, 'entrypoint is required'],
  ])('when the body has %s, then 400 INVALID_PARAMETER names it and no sandbox is created', async (_what, body, message) => {
    const { services, calls } = fakeServices();
    const res = await (await app(services)).inject({ method: 'POST', url: '/v1/sandboxes', ...json(body) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: expect.stringContaining(message) });
    expect(calls).toEqual([]);
  });

  it.each([
    ['cpu "1m" (below what the engine enforces)', { resourceLimits: { cpu: '1m' } }, 'below 10m'],
    ['cpu "0"', { resourceLimits: { cpu: '0' } }, 'resourceLimits.cpu'],
    ['cpu above the configured maximum', { resourceLimits: { cpu: '17' } }, "exceeds this server's maximum of 16"],
    ['memory "1"', { resourceLimits: { memory: '1' } }, 'below 6Mi'],
    ['memory above the configured maximum', { resourceLimits: { memory: '65Gi' } }, 'maximum of 64Gi'],
    ['an image reference with spaces', { image: { uri: 'Bad Image*x' } }, 'is not an image reference'],
    ['a 300-character image reference', { image: { uri: 'a'.repeat(300) } }, 'at most 255 characters'],
    ['an empty executable', { entrypoint: [''] }, 'entrypoint[0]'],
    ['a NUL in an argument', { entrypoint: ['sh', 'a\u0000b'] }, 'NUL'],
    ['too large an entrypoint', { entrypoint: ['sh', 'x'.repeat(70_000)] }, 'at most 65536 bytes'],
    ['an env name with "="', { env: { 'A=B': '1' } }, 'env key'],
    ['too many env variables', { env: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`V${i}`, '1'])) }, 'at most 256'],
    ['a mountPath with ":"', { volumes: [{ name: 'v', pvc: { claimName: 'c' }, mountPath: '/x:ro' }] }, 'mountPath'],
    ['a mountPath of "/"', { volumes: [{ name: 'v', pvc: { claimName: 'c' }, mountPath: '//' }] }, 'root'],
    ['a subPath with ":"', { volumes: [{ name: 'v', pvc: { claimName: 'c' }, subPath: 'a:b', mountPath: '/v' }] }, 'subPath'],
    ['a port list with a non-port', { extensions: { 'tidebox.io/ports': '80,0' } }, '"0" is not a port'],
    ['too many extensions', { extensions: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x/k${i}`, 'v'])) }, 'at most 64 keys'],
    [
      'too large extensions',
      { extensions: { a: 'x'.repeat(4000), b: 'x'.repeat(4000), c: 'x'.repeat(4000), d: 'x'.repeat(4000), e: 'x'.repeat(1000) } },
      'at most 16384 bytes',
    ],
    ['an image ID prefix', { image: { uri: '9411324131cc' } }, 'not by image ID'],
    ['the snapshot repository', { image: { uri: 'tidebox-snapshots:abc' } }, 'snapshotId'],
  ])('when the body has %s, then 400 at once names the field and nothing is created', async (_what, override, message) => {
    const { services, calls } = fakeServices();
    const res = await (await app(services)).inject({ method: 'POST', url: '/v1/sandboxes', ...json({ ...createBody, ...override }) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: expect.stringContaining(message) });
    expect(calls).toEqual([]);
  });

  it('when a sandbox on host networking declares a port of the control plane, then 400 and nothing is created', async () => {
    const { services, calls } = fakeServices();
    const a = await app(services, { docker: { network: 'host' }, server: { port: 9000 }, worker: { metricsPort: 9464 } });
    for (const port of ['9000', '9464', '7233', '8233']) {
      const res = await a.inject({
        method: 'POST',
        url: '/v1/sandboxes',
        ...json({ ...createBody, extensions: { 'tidebox.io/ports': port } }),
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toContain(`port ${port} belongs to this server's control plane`);
    }
    expect(calls).toEqual([]);
  });

  it('when the body asks for what this server cannot honour (egress rules), then 400 UNSUPPORTED and nothing is created', async () => {
    const { services, calls } = fakeServices();
    const res = await (
      await app(services)
    ).inject({ method: 'POST', url: '/sandboxes', ...json({ ...createBody, networkPolicy: { defaultAction: 'deny' } }) });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('SANDBOX::UNSUPPORTED');
    expect(calls).toEqual([]);
  });

  it('when the body is not JSON, then 400 INVALID_PARAMETER', async () => {
    const { services, calls } = fakeServices();
    const res = await (
      await app(services)
    ).inject({ method: 'POST', url: '/v1/sandboxes', payload: '{"image":', headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('SANDBOX::INVALID_PARAMETER');
    expect(calls).toEqual([]);
  });

  it('when the body is valid, then the service gets the normalised spec and the caller, and the answer is 202 with Location and workflowId', async () => {
    const { services, calls } = fakeServices({ sandboxes: { create: async () => VIEW } });
    const res = await (
      await app(services)
    ).inject({
      method: 'POST',
      url: '/v1/sandboxes',
      ...json(createBody),
      headers: { 'content-type': 'application/json', prefer: 'respond-async', 'idempotency-key': 'k-1' },
    });
    expect(res.statusCode).toBe(202);
    expect(res.headers.location).toBe('/v1/sandboxes/sb-1');
    expect(res.json()).toMatchObject({ id: 'sb-1', workflowId: 'sandbox/sb-1', status: { state: 'Running' } });
    expect(res.json().image).toBeUndefined();
    const [caller, spec, opts] = calls[0]!.args as [unknown, { resources: unknown; timeoutSeconds: number }, unknown];
    expect(calls.map((c) => c.method)).toEqual(['sandboxes.create']);
    expect(caller).toEqual({ kind: 'tenant', tenant: 'default', namespace: 'default' });
    expect(spec).toMatchObject({ resources: { cpuMillis: 500, memoryBytes: 256 * 2 ** 20 }, timeoutSeconds: 600 });
    expect(opts).toEqual({ idempotencyKey: 'k-1', respondAsync: true });
  });
});

describe('claims from a warm pool', () => {
  const poolTemplate = { image: { uri: 'busybox' }, entrypoint: ['sleep', '60'], resourceLimits: { cpu: '500m', memory: '256Mi' } };
  const claimBody = { timeout: 600, extensions: { poolRef: 'warm' } };

  it("when the pool's members live on another Docker host, then 409 names it and nothing is claimed", async () => {
    const { services, calls } = fakeServices({ pools: { template: async () => ({ template: poolTemplate, hostId: 'far-away' }) } });
    const res = await (await app(services)).inject({ method: 'POST', url: '/v1/sandboxes', ...json(claimBody) });
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toMatch(/host far-away/);
    expect(calls.map((c) => c.method)).toEqual(['pools.template']);
  });

  it('when the claimed create is over quota, then 429 and the member goes back to the pool; any other failure keeps it claimed', async () => {
    const failWith = (kind: ErrorKind) => {
      const { services, calls } = fakeServices({
        pools: {
          template: async () => ({ template: poolTemplate, hostId: parseConfig({}).docker.hostId }),
          claim: async () => ({ memberId: 'member-1', spec: {} as never }),
          unclaim: async () => undefined,
        },
        sandboxes: {
          create: async () => {
            throw new TideboxError(kind, 'refused');
          },
        },
      });
      return { services, calls };
    };
    const over = failWith('QUOTA_EXCEEDED');
    expect((await (await app(over.services)).inject({ method: 'POST', url: '/v1/sandboxes', ...json(claimBody) })).statusCode).toBe(429);
    expect(over.calls.map((c) => c.method)).toEqual(['pools.template', 'pools.claim', 'sandboxes.create', 'pools.unclaim']);
    expect(over.calls.at(-1)!.args).toEqual(['default', 'warm', 'member-1']);
    // The create carried the member: the sandbox would have taken its id.
    expect(over.calls[2]!.args[2]).toMatchObject({ member: { id: 'member-1', pool: 'pool/default/warm' } });

    const after = failWith('INVALID_STATE');
    expect((await (await app(after.services)).inject({ method: 'POST', url: '/v1/sandboxes', ...json(claimBody) })).statusCode).toBe(409);
    expect(after.calls.map((c) => c.method)).not.toContain('pools.unclaim');
  });
});

describe('request bodies', () => {
  const emptyJson = { payload: '', headers: { 'content-type': 'application/json' } };
  const services = () =>
    fakeServices({
      sandboxes: { delete: async () => undefined, pause: async () => VIEW, resume: async () => VIEW, get: async () => VIEW },
      snapshots: { delete: async () => undefined },
    });

  it.each([
    ['DELETE', '/v1/sandboxes/sb-1', 204],
    ['POST', '/v1/sandboxes/sb-1/pause', 202],
    ['POST', '/v1/sandboxes/sb-1/resume', 202],
    ['DELETE', '/v1/snapshots/sn-1', 204],
  ] as const)(
    'when %s %s comes with Content-Type: application/json and no body, then it is served as body-less (%d)',
    async (method, url, status) => {
      const res = await (await app(services().services)).inject({ method, url, ...emptyJson });
      expect(res.statusCode).toBe(status);
    },
  );

  it.each([
    ['whitespace under a JSON type', { payload: ' \n', headers: { 'content-type': 'application/json; charset=utf-8' } }],
    ['an empty form body', { payload: '', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
    ['an empty text body', { payload: '', headers: { 'content-type': 'text/plain' } }],
  ])('when a body-less route gets %s, then it is served', async (_what, request) => {
    const res = await (await app(services().services)).inject({ method: 'DELETE', url: '/v1/sandboxes/sb-1', ...request });
    expect(res.statusCode).toBe(204);
  });

  it('when a body-less route gets a non-empty body, then 400 says it takes none and nothing is deleted', async () => {
    const { services: s, calls } = services();
    const res = await (await app(s)).inject({ method: 'DELETE', url: '/v1/sandboxes/sb-1', ...json({ force: true }) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: 'DELETE /v1/sandboxes/:sandboxId takes no request body' });
    expect(calls).toEqual([]);
  });

  it('when a non-empty body is not JSON, then 400 names the type it came as', async () => {
    const { services: s, calls } = services();
    const res = await (
      await app(s)
    ).inject({ method: 'POST', url: '/v1/sandboxes', payload: 'image=x', headers: { 'content-type': 'text/plain' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: expect.stringContaining('must be JSON') });
    expect(res.json().message).toContain('text/plain');
    expect(calls).toEqual([]);
  });

  it('when a route that needs a body gets an empty one, then 400 says a body is required', async () => {
    const { services: s, calls } = services();
    const res = await (await app(s)).inject({ method: 'POST', url: '/v1/sandboxes/sb-1/renew-expiration', ...emptyJson });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: 'a JSON request body is required' });
    expect(calls).toEqual([]);
  });

  it('when a JSON body carries __proto__, then 400 and nothing is called', async () => {
    const { services: s, calls } = services();
    const res = await (
      await app(s)
    ).inject({ method: 'POST', url: '/v1/sandboxes', payload: '{"__proto__": {"x": 1}}', headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(calls).toEqual([]);
  });

  it('when the snapshot create route (optional body) gets an empty JSON body, then the snapshot is made without a name', async () => {
    const created: SnapshotView = {
      id: 'sn-1',
      tenant: 'default',
      sandboxId: 'sb-1',
      hostId: 'local',
      workflowId: 'snapshot/sn-1',
      image: 'tidebox-snapshots:sn-1',
      status: { state: 'Creating', lastTransitionAt: VIEW.createdAt },
      createdAt: VIEW.createdAt,
      steps: [],
      retries: 0,
    };
    const { services: s, calls } = fakeServices({ snapshots: { create: async () => created } });
    const res = await (await app(s)).inject({ method: 'POST', url: '/v1/sandboxes/sb-1/snapshots', ...emptyJson });
    expect(res.statusCode).toBe(202);
    expect(calls[0]!.args[2]).toBeUndefined();
  });
});

describe('server limits', () => {
  it('when built, then Node closes slow and idle clients: request, headers and keep-alive timeouts, requests per socket', async () => {
    const a = await app(fakeServices().services, {
      server: { requestTimeoutSeconds: 120, headersTimeoutSeconds: 20, keepAliveTimeoutSeconds: 65, maxRequestsPerSocket: 500 },
    });
    expect(a.server.requestTimeout).toBe(120_000);
    expect(a.server.headersTimeout).toBe(20_000);
    expect(a.server.keepAliveTimeout).toBe(65_000);
    expect(a.server.maxRequestsPerSocket).toBe(500);
  });
});

describe('client events', () => {
  const counting = () => fakeServices({ workflows: { counts: async () => ({ byState: {}, workflowFailures: [] }) } });
  const report = (a: FastifyInstance, body: unknown) => a.inject({ method: 'POST', url: '/v1/metrics/events', ...json(body) });

  it('when an SDK reports a create, then 204 and /metrics counts it by event name and success', async () => {
    const a = await app(counting().services);
    expect(
      (await report(a, { eventType: 'sandbox.create', success: true, createDurationMs: 812, sandboxId: 'sb-1', sdk: 'x' })).statusCode,
    ).toBe(204);
    expect((await report(a, { eventType: 'sandbox.create', success: true })).statusCode).toBe(204);
    expect((await report(a, { eventType: 'sandbox.create', success: false })).statusCode).toBe(204);
    const metrics = (await a.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('tidebox_client_events_total{event="sandbox.create",success="true"} 2');
    expect(metrics).toContain('tidebox_client_events_total{event="sandbox.create",success="false"} 1');
  });

  it('when callers invent more event names than the bound, then the rest are counted as "other"', async () => {
    const a = await app(counting().services);
    for (let i = 0; i < MAX_CLIENT_EVENT_NAMES + 5; i++) expect((await report(a, { eventType: `e${i}` })).statusCode).toBe(204);
    const metrics = (await a.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics.match(/^tidebox_client_events_total\{/gm)).toHaveLength(MAX_CLIENT_EVENT_NAMES + 1);
    expect(metrics).toContain('tidebox_client_events_total{event="other",success=""} 5');
  });

  it.each([
    ['no eventType', {}],
    ['an eventType with spaces', { eventType: 'a b' }],
    ['a negative duration', { eventType: 'sandbox.create', createDurationMs: -1 }],
  ])('when the event has %s, then 400 and nothing is counted', async (_what, body) => {
    const a = await app(counting().services);
    expect((await report(a, body)).statusCode).toBe(400);
    expect((await a.inject({ method: 'GET', url: '/metrics' })).body).not.toMatch(/^tidebox_client_events_total\{/m);
  });
});

describe('requests Node cannot take', () => {
  it('when the request line is larger than Node accepts, then 400 in the contract envelope', async () => {
    const a = await app(fakeServices().services);
    await a.listen({ port: 0, host: '127.0.0.1' });
    const { port } = a.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/v1/sandboxes?metadata=${'x'.repeat(20_000)}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: 'the request line and headers are too large' });
  });
});

describe('errors', () => {
  it.each(Object.keys(ErrorCodes) as ErrorKind[])(
    'when a service fails with %s, then the answer carries its status and code',
    async (kind) => {
      const { services } = fakeServices({
        sandboxes: {
          get: async () => {
            throw new TideboxError(kind, `because ${kind}`);
          },
        },
      });
      const res = await (await app(services)).inject({ method: 'GET', url: '/v1/sandboxes/sb-1' });
      expect(res.statusCode).toBe(ErrorCodes[kind].httpStatus);
      expect(res.json()).toEqual({ code: ErrorCodes[kind].code, message: `because ${kind}` });
    },
  );

  it('when a service fails with an unexpected error, then 500 says nothing of it but the request id', async () => {
    const { services } = fakeServices({
      sandboxes: {
        get: async () => {
          throw new Error('connect ECONNREFUSED 10.0.0.7:7233 (secret internals)');
        },
      },
    });
    const res = await (await app(services)).inject({ method: 'GET', url: '/v1/sandboxes/sb-1', headers: { 'x-request-id': 'req-42' } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ code: 'SERVER::INTERNAL_ERROR', message: 'internal error; see the server log for the request id' });
    expect(res.headers['x-request-id']).toBe('req-42');
  });

  it('when no route matches, then 404 ROUTE_NOT_FOUND', async () => {
    const { services } = fakeServices();
    const res = await (await app(services)).inject({ method: 'GET', url: '/v1/nothing-here' });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('SERVER::ROUTE_NOT_FOUND');
  });
});

describe('auth', () => {
  it('when an API key is configured, then a request without it is 401 MISSING_API_KEY, with a wrong one 401 INVALID_API_KEY, and it reaches no service', async () => {
    const { services, calls } = fakeServices({ sandboxes: { get: async () => VIEW } });
    const a = await app(services, { server: { apiKey: 'k'.repeat(32) } });
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1' })).json().code).toBe('AUTH::MISSING_API_KEY');
    expect(
      (await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1', headers: { 'open-sandbox-api-key': 'x'.repeat(32) } })).statusCode,
    ).toBe(401);
    expect(calls).toEqual([]);
    const ok = await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1', headers: { 'open-sandbox-api-key': 'k'.repeat(32) } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ id: 'sb-1', image: { uri: 'busybox' }, status: { state: 'Running' } });
    expect(ok.json().containerId).toBeUndefined();
  });
});

describe('lifecycle routes', () => {
  it.each([
    ['a NUL in a value', 'a=b\u0000c'],
    ['a key that is no label key', 'has space=x'],
    ['a control character in a key', 'k\u0001=x'],
    ['too many pairs', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join('&')],
  ])('when a list filters metadata with %s, then 400 before any query is made', async (_what, filter) => {
    const { services, calls } = fakeServices();
    const res = await (await app(services)).inject({ method: 'GET', url: `/v1/sandboxes?metadata=${encodeURIComponent(filter)}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain('metadata filter');
    expect(calls).toEqual([]);
  });

  it('when listing with a state the contract does not have, or too large a page, then 400; a good filter reaches the service parsed', async () => {
    const { services, calls } = fakeServices({
      sandboxes: {
        list: async () => ({ items: [VIEW], pagination: { page: 1, pageSize: 5, totalItems: 1, totalPages: 1, hasNextPage: false } }),
      },
    });
    const a = await app(services);
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes?state=Sleeping' })).statusCode).toBe(400);
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes?pageSize=500' })).statusCode).toBe(400);
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes?tenant=other' })).json().message).toBe(
      'the tenant filter needs an admin key',
    );
    expect(calls).toEqual([]);
    const res = await a.inject({
      method: 'GET',
      url: '/v1/sandboxes?state=Running,Paused&state=Failed&metadata=team%3Da%26tier%3Dgold&pageSize=5',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().items).toHaveLength(1);
    expect(calls[0]!.args[1]).toEqual({
      tenant: undefined,
      states: ['Running', 'Paused', 'Failed'],
      metadata: { team: 'a', tier: 'gold' },
      page: 1,
      pageSize: 5,
    });
  });

  it('when a tenant has server.listsInFlightPerTenant LISTs running, then its next ones wait their turn and past listsQueuedPerTenant get 429 (the visibility rate is shared); a finished or failed LIST passes its slot on', async () => {
    const held: Array<() => void> = [];
    let fail = false;
    const page = { items: [VIEW], pagination: { page: 1, pageSize: 20, totalItems: 1, totalPages: 1, hasNextPage: false } };
    const { services, calls } = fakeServices({
      sandboxes: {
        list: () =>
          fail
            ? Promise.reject(new TideboxError('TIMEOUT', 'visibility did not answer'))
            : new Promise((resolve) => held.push(() => resolve(page))),
        get: async () => VIEW,
      },
    });
    const a = await app(services, { server: { listsInFlightPerTenant: 2, listsQueuedPerTenant: 1 } });
    // (Promise.resolve sends it now: inject's chain would wait for its first then.)
    const list = (prefix = '/v1') => Promise.resolve(a.inject({ method: 'GET', url: `${prefix}/sandboxes` }));
    const until = async (n: number) => {
      while (held.length < n) await new Promise((r) => setImmediate(r));
    };
    const listed = () => calls.filter((c) => c.method === 'sandboxes.list').length;
    // Both route prefixes count against one limit: two run, the third waits...
    const running = [list(), list('')];
    await until(2);
    const third = list();
    // ...and with one already waiting, a fourth is refused at once.
    const refused = await list();
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({ code: 'SERVER::BUSY', message: 'too many LISTs: 2 run at once per tenant and 1 wait; retry later' });
    expect(listed()).toBe(2);
    // Other calls are not held back.
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1' })).statusCode).toBe(200);
    // A finished LIST hands its slot to the one waiting.
    held.shift()!();
    await until(2);
    expect(listed()).toBe(3);
    for (const release of held.splice(0)) release();
    expect((await Promise.all([...running, third])).map((r) => r.statusCode)).toEqual([200, 200, 200]);
    // Failed LISTs give their slots back too.
    fail = true;
    expect((await Promise.all([list(), list(), list()])).map((r) => r.statusCode)).toEqual([504, 504, 504]);
    fail = false;
    const after = [list(), list()];
    await until(2);
    for (const release of held.splice(0)) release();
    expect((await Promise.all(after)).map((r) => r.statusCode)).toEqual([200, 200]);
  });

  it('when renewing with something that is not a date-time, then 400 before the service; a date-time reaches it', async () => {
    const { services, calls } = fakeServices({
      sandboxes: { renew: async (_c: unknown, _id: string, expiresAt: string) => ({ expiresAt }) },
    });
    const a = await app(services);
    expect(
      (await a.inject({ method: 'POST', url: '/v1/sandboxes/sb-1/renew-expiration', ...json({ expiresAt: 'tomorrow' }) })).statusCode,
    ).toBe(400);
    expect(calls).toEqual([]);
    const res = await a.inject({
      method: 'POST',
      url: '/v1/sandboxes/sb-1/renew-expiration',
      ...json({ expiresAt: '2030-01-01T00:00:00Z' }),
    });
    expect(res.json()).toEqual({ expiresAt: '2030-01-01T00:00:00Z' });
    expect(calls[0]!.args.slice(1)).toEqual(['sb-1', '2030-01-01T00:00:00Z']);
  });

  it('when pausing, then 202 with the accepted state; on the Kubernetes runtime 501 after a 404 check', async () => {
    const { services } = fakeServices({
      sandboxes: { pause: async () => ({ ...VIEW, status: { ...VIEW.status, state: 'Pausing' } }), get: async () => VIEW },
    });
    const res = await (await app(services)).inject({ method: 'POST', url: '/v1/sandboxes/sb-1/pause' });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ state: 'Pausing', workflowId: 'sandbox/sb-1' });
    const k8s = await app(services, { runtime: { type: 'kubernetes' } });
    const refused = await k8s.inject({ method: 'POST', url: '/v1/sandboxes/sb-1/pause' });
    expect(refused.statusCode).toBe(501);
    expect(refused.json().code).toBe('SANDBOX::NOT_SUPPORTED_BY_RUNTIME');
  });

  it('when asking for endpoints, then a published port resolves, an undeclared one is 404, a signed one 400, and the server proxy names this API', async () => {
    const { services } = fakeServices({ sandboxes: { reach: async () => VIEW } });
    const a = await app(services);
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1/endpoints/8080' })).json()).toEqual({ endpoint: '127.0.0.1:32080' });
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1/endpoints/9999' })).json().code).toBe('SANDBOX::PORT_NOT_AVAILABLE');
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1/endpoints/8080?expires=60' })).json().code).toBe(
      'SANDBOX::UNSUPPORTED',
    );
    expect((await a.inject({ method: 'GET', url: '/v1/sandboxes/sb-1/endpoints/70000' })).statusCode).toBe(400);
    const proxied = await a.inject({
      method: 'GET',
      url: '/v1/sandboxes/sb-1/endpoints/8080?use_server_proxy=true',
      headers: { host: 'api.example:8080' },
    });
    expect(proxied.json()).toEqual({ endpoint: 'api.example:8080/sandboxes/sb-1/proxy/8080' });
  });

  it('when asking for a workflow by an encoded id, then the service gets it decoded', async () => {
    const { services, calls } = fakeServices({
      workflows: {
        status: async () => ({
          workflowId: 'sandbox/sb-1',
          runId: 'r',
          type: 'sandboxWorkflow',
          status: 'RUNNING' as const,
          taskQueue: 'tidebox',
          startTime: VIEW.createdAt,
          closeTime: undefined,
          historyLength: 3,
          failure: undefined,
        }),
      },
    });
    const res = await (await app(services)).inject({ method: 'GET', url: '/v1/workflows/sandbox%2Fsb-1' });
    expect(res.statusCode).toBe(200);
    expect(calls[0]!.args[1]).toBe('sandbox/sb-1');
  });

  it('when listing snapshots with an unknown state, then 400 names the snapshot states', async () => {
    const { services, calls } = fakeServices();
    const res = await (await app(services)).inject({ method: 'GET', url: '/v1/snapshots?state=Gone' });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toBe('unknown snapshot state Gone; expected one of Creating, Ready, Failed, Deleting');
    expect(calls).toEqual([]);
  });
});
