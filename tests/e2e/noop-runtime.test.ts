import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * The `noop` runtime (scale measurement only): the whole actor path — workflow, activities, timers,
 * memo, search attributes — with no workload behind it. Real Temporal, real worker and API; the
 * Docker engine must see nothing of it.
 */
let stack: Stack;
beforeAll(async () => {
  // With a payload key, so that bucket volumes are refused for the runtime alone.
  stack = await Stack.start({
    config: { runtime: { type: 'noop' }, sandbox: { minTimeoutSeconds: 1 }, security: { payloadKey: randomBytes(32).toString('base64') } },
  });
});
afterAll(async () => {
  await stack?.destroy();
});

describe('noop runtime', () => {
  it('when sandboxes are created, listed, renewed, paused, resumed, expired and deleted, then every answer is the real path; snapshots and execd are refused; its host queue is its own', async () => {
    const created = await Promise.all(
      [1, 2, 3].map((n) => stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { scale: 'probe', n: String(n) } }))),
    );
    expect(created.map((r) => r.status)).toEqual([202, 202, 202]);
    const ids = created.map((r) => r.body.id as string);
    for (const id of ids)
      await waitFor(
        'Running',
        async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).body.status?.state === 'Running',
        20_000,
        50,
      );
    await waitFor(
      'the listing to show the three',
      async () => (await stack.request('GET', '/v1/sandboxes?metadata=scale%3Dprobe')).body.items?.length === 3,
      10_000,
      100,
    );

    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const renewed = await stack.request('POST', `/v1/sandboxes/${ids[0]}/renew-expiration`, { expiresAt });
    expect(renewed.status).toBe(200);
    expect(new Date(renewed.body.expiresAt).getTime()).toBe(new Date(expiresAt).getTime());

    expect((await stack.request('POST', `/v1/sandboxes/${ids[1]}/pause`)).status).toBe(202);
    await waitFor(
      'Paused',
      async () => (await stack.request('GET', `/v1/sandboxes/${ids[1]}`)).body.status?.state === 'Paused',
      20_000,
      50,
    );
    expect((await stack.request('POST', `/v1/sandboxes/${ids[1]}/resume`)).status).toBe(202);
    await waitFor(
      'Running again',
      async () => (await stack.request('GET', `/v1/sandboxes/${ids[1]}`)).body.status?.state === 'Running',
      20_000,
      50,
    );

    // Snapshots need a workload, commands a sandbox to run in: refused clearly, nothing made.
    const snap = await stack.request('POST', `/v1/sandboxes/${ids[2]}/snapshots`, {});
    expect([snap.status, snap.body.code]).toEqual([501, 'SANDBOX::NOT_SUPPORTED_BY_RUNTIME']);
    const execd = await stack.request('GET', `/v1/sandboxes/${ids[2]}/endpoints/44772`);
    expect([execd.status, execd.body.code]).toEqual([404, 'SANDBOX::PORT_NOT_AVAILABLE']);

    // Expiry is the real timer: a 2 s sandbox ends by itself.
    const brief = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 2 }));
    expect(brief.status).toBe(202);
    await waitFor(
      'the brief sandbox to expire',
      async () => (await stack.request('GET', `/v1/sandboxes/${brief.body.id}`)).status === 404,
      20_000,
      100,
    );

    for (const id of ids) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    for (const id of ids) expect((await stack.request('GET', `/v1/sandboxes/${id}`)).status).toBe(404);
    const log = readFileSync(join(stack.dataDir, 'worker.log'), 'utf8');
    expect(log).toContain('runtime noop: sandboxes get no workload');
    // Its host queue is its own: never a real Docker host's (tidebox-host-local).
    expect(log).toMatch(/"taskQueues":\["[^"]+","[^"]+-host-noop-local"\]/);
  });

  it('when a create asks for a bucket volume, then 400 says so and nothing is made (no host mounts buckets here)', async () => {
    const refused = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({
        metadata: { probe: 'bucket' },
        volumes: [
          {
            name: 'data',
            mountPath: '/data',
            ossfs: {
              bucket: 'bucket',
              endpoint: 'oss-cn-hangzhou.aliyuncs.com',
              version: '1.0',
              accessKeyId: 'id',
              accessKeySecret: 'secret-value',
            },
          },
        ],
      }),
    );
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'SANDBOX::UNSUPPORTED', message: expect.stringContaining('offers no ossfs volumes') });
    expect(JSON.stringify(refused.body)).not.toContain('secret-value');
    expect((await stack.request('GET', '/v1/sandboxes?metadata=probe%3Dbucket')).body.items).toEqual([]);
    // The published document offers none either.
    expect(JSON.stringify((await stack.request('GET', '/openapi.json')).body)).toContain('"Exactly one backend: pvc"');
  });
});

describe('LIST pages from a newest-first window', () => {
  it('when 24 sandboxes are paged one, five and seven at a time, then every page is the slice of the whole newest-first list, and the totals hold', async () => {
    const run = `page${Date.now()}`;
    const ids: string[] = [];
    // In three waves, so their creation times spread over several seconds and windows cut between them.
    for (let wave = 0; wave < 3; wave++) {
      const created = await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { run, n: `${wave}-${n}` } })),
        ),
      );
      expect(created.map((r) => r.status)).toEqual(Array(8).fill(202));
      ids.push(...created.map((r) => r.body.id as string));
    }
    const listed = async (q: string) =>
      (await stack.request('GET', `/v1/sandboxes?metadata=${encodeURIComponent(`run=${run}`)}&${q}`)).body;
    const whole = await waitFor('visibility to index the 24 as Running', async () => {
      const body = await listed('state=Running&pageSize=200');
      return body.items?.length === 24 ? body : undefined;
    });
    const order = whole.items.map((s: { id: string }) => s.id);
    expect([...order].sort()).toEqual([...ids].sort());
    const keys = whole.items.map((s: { createdAt: string; id: string }) => [s.createdAt, s.id]);
    expect(keys).toEqual([...keys].sort((a: string[], b: string[]) => b[0]!.localeCompare(a[0]!) || a[1]!.localeCompare(b[1]!)));

    for (const pageSize of [1, 5, 7]) {
      const pages = Math.ceil(24 / pageSize);
      const seen: string[] = [];
      for (let page = 1; page <= pages; page++) {
        const body = await listed(`pageSize=${pageSize}&page=${page}`);
        expect(body.pagination).toEqual({ page, pageSize, totalItems: 24, totalPages: pages, hasNextPage: page < pages });
        seen.push(...body.items.map((s: { id: string }) => s.id));
      }
      expect([pageSize, seen]).toEqual([pageSize, order]);
    }
    const beyond = await listed('pageSize=5&page=6');
    expect(beyond.items).toEqual([]);
    expect(beyond.pagination).toMatchObject({ totalItems: 24, hasNextPage: false });
    expect((await listed('state=Running&pageSize=1')).items.map((s: { id: string }) => s.id)).toEqual([order[0]]);
    for (const id of ids) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});
