import { SandboxManager } from '@alibaba-group/opensandbox';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * The published OpenSandbox TypeScript SDK, unmodified, against a real Tidebox: its lifecycle
 * manager lists, reads, renews and kills sandboxes. (Sandbox.create additionally needs the
 * endpoints route, which arrives with the contract issue.)
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
