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
  stack = await Stack.start({ config: { runtime: { type: 'noop' }, sandbox: { minTimeoutSeconds: 1 } } });
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
});
