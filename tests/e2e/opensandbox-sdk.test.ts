import { Sandbox, SandboxManager } from '@alibaba-group/opensandbox';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * The published OpenSandbox TypeScript SDK, unmodified, against a real Tidebox: `Sandbox` creates,
 * reads, renews, pauses, resumes, resolves endpoints and kills; `SandboxManager` lists with filters.
 * The in-sandbox health check is skipped here; tests/e2e/execd.test.ts runs the SDK with it on.
 */
const API_KEY = 'sdk-test-key-0123456789';
let stack: Stack;
let manager: SandboxManager;

beforeAll(async () => {
  stack = await Stack.start({ apiKey: API_KEY });
  manager = SandboxManager.create({ connectionConfig: { domain: stack.baseUrl, apiKey: API_KEY } });
});
afterAll(async () => {
  await manager?.close();
  await stack?.destroy();
});

it('when the OpenSandbox SDK manages a Tidebox sandbox, then list, get, renew and kill work unchanged', async () => {
  const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 300, metadata: { via: 'sdk' } }));
  expect(created.body.status.state).toBe('Running');
  const id: string = created.body.id;

  const listed = await waitFor('the SDK to list the sandbox', async () => {
    const r = await manager.listSandboxInfos({ states: ['Running'], metadata: { via: 'sdk' } });
    return r.items.length === 1 ? r : undefined;
  });
  expect(listed.items[0]!.id).toBe(id);
  expect(listed.pagination).toMatchObject({ page: 1, totalItems: 1, hasNextPage: false });

  const info = await manager.getSandboxInfo(id);
  expect(info.id).toBe(id);
  expect(info.status.state).toBe('Running');
  expect(info.metadata).toEqual({ via: 'sdk' });

  const before = new Date(info.expiresAt!).getTime();
  await manager.renewSandbox(id, 1800);
  const after = new Date((await manager.getSandboxInfo(id)).expiresAt!).getTime();
  expect(after).toBeGreaterThan(before + 1000 * 1000);

  await manager.killSandbox(id);
  expect(await stack.containers(id)).toHaveLength(0);
  await expect(manager.getSandboxInfo(id)).rejects.toMatchObject({ statusCode: 404 });
});

it('when the SDK drives the whole lifecycle with Sandbox, then create, getInfo, list, renew, pause, resume, endpoint and kill work unchanged', async () => {
  const connectionConfig = { domain: stack.baseUrl, apiKey: API_KEY };
  const sandbox = await Sandbox.create({
    connectionConfig,
    image: 'tidebox/busybox:latest',
    resource: { cpu: '250m', memory: '64Mi' },
    timeoutSeconds: 300,
    metadata: { via: 'sdk-sandbox' },
    skipHealthCheck: true,
  });
  try {
    const info = await sandbox.getInfo();
    expect(info).toMatchObject({ id: sandbox.id, status: { state: 'Running' }, metadata: { via: 'sdk-sandbox' } });
    const [container] = await stack.containers(sandbox.id);
    expect(container!.State).toBe('running');
    // The SDK reports the create's latency (POST /v1/metrics/events); Tidebox counts it.
    await waitFor('the SDK telemetry event to be counted', async () =>
      (await (await fetch(`${stack.baseUrl}/metrics`)).text()).includes(
        'tidebox_client_events_total{event="sandbox.create",success="true"} 1',
      ),
    );

    const listed = await waitFor('the SDK to list it by state and metadata', async () => {
      const r = await manager.listSandboxInfos({ states: ['Running', 'Paused'], metadata: { via: 'sdk-sandbox' } });
      return r.items.length === 1 ? r : undefined;
    });
    expect(listed.items[0]!.id).toBe(sandbox.id);
    expect((await manager.listSandboxInfos({ states: ['Paused'], metadata: { via: 'sdk-sandbox' } })).items).toHaveLength(0);

    const renewed = await sandbox.renew(1200);
    expect(new Date(renewed.expiresAt!).getTime()).toBeGreaterThan(Date.now() + 1100 * 1000);

    // The SDK resolves the execd and egress ports right after create; any published port works the same.
    const endpoint = await sandbox.getEndpoint(8080);
    const published = (await stack.docker.getContainer(container!.Id).inspect()).NetworkSettings.Ports['8080/tcp']![0]!.HostPort;
    expect(endpoint.endpoint).toBe(`127.0.0.1:${published}`);

    await sandbox.pause();
    await waitFor('Paused', async () => (await sandbox.getInfo()).status.state === 'Paused');
    expect((await stack.docker.getContainer(container!.Id).inspect()).State.Paused).toBe(true);
    const resumed = await sandbox.resume({ skipHealthCheck: true });
    await waitFor('Running again', async () => (await resumed.getInfo()).status.state === 'Running');
    expect((await stack.docker.getContainer(container!.Id).inspect()).State.Paused).toBe(false);
    await resumed.close();

    await sandbox.kill();
    expect(await stack.containers(sandbox.id)).toHaveLength(0);
    await expect(sandbox.getInfo()).rejects.toMatchObject({ statusCode: 404 });
  } finally {
    await sandbox.close();
  }
});
