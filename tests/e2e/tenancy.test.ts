import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { ECHO_PATH, echoServersEntrypoint, HTTP_PORT } from '../helpers/sandbox-servers';
import { HttpResult, sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * Two tenants and an admin on one server, tenants from a file provider: isolation on every path,
 * hot reload of the tenants file, background work (schedules, expiry) across restarts staying inside
 * its tenant, and per-tenant, per-user storage.
 */
const KEY_A = 'acme-key-0123456789abcdef';
const KEY_B = 'globex-key-0123456789abcdef';
const KEY_C = 'initech-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';

const dir = mkdtempSync(join(tmpdir(), 'tidebox-test-tenancy-'));
const tenantsFile = join(dir, 'tenants.toml');
const storage = join(dir, 'storage');
const volumeName = `tbx-test-${Math.random().toString(36).slice(2, 8)}`;

type TenantEntry = { name: string; namespace: string; apiKeys: string[] };
const acme: TenantEntry = { name: 'acme', namespace: 'team-acme', apiKeys: [KEY_A] };
const globex: TenantEntry = { name: 'globex', namespace: 'globex-ns', apiKeys: [KEY_B] };
/** Replace the file atomically, as config management does (the provider watches the directory for this). */
const replaceTenantsFile = (text: string) => {
  writeFileSync(`${tenantsFile}.tmp`, text);
  renameSync(`${tenantsFile}.tmp`, tenantsFile);
};
const writeTenants = (tenants: TenantEntry[]) => replaceTenantsFile(stringify({ tenants }));

let stack: Stack;
beforeAll(async () => {
  mkdirSync(storage, { recursive: true });
  writeTenants([acme, globex]);
  stack = await Stack.start({
    config: {
      tenants: { provider: 'file', file: tenantsFile, pollSeconds: 1, adminKeys: [ADMIN] },
      sandbox: { allowedHostPaths: [storage] },
    },
  });
});
afterAll(async () => {
  await stack?.destroy();
  await stack?.docker
    .getVolume(volumeName)
    .remove({ force: true })
    .catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const as = (key: string) => ({
  req: (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    stack.request(method, path, body, { 'OPEN-SANDBOX-API-KEY': key, ...headers }),
});
const A = as(KEY_A);
const B = as(KEY_B);
const admin = as(ADMIN);

async function create(who: ReturnType<typeof as>, overrides: Record<string, unknown> = {}): Promise<string> {
  const r = await who.req('POST', '/v1/sandboxes', sandboxRequest(overrides));
  expect(r.status).toBe(202);
  expect(r.body.status.state).toBe('Running');
  return r.body.id;
}
const ids = (r: HttpResult): string[] => r.body.items.map((s: { id: string }) => s.id).sort();

describe('isolation between tenants', () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    a = await create(A, { metadata: { owner: 'acme' } });
    b = await create(B, { metadata: { owner: 'globex' }, entrypoint: echoServersEntrypoint() });
  });

  it('when each tenant lists, then it sees only its own sandboxes; the admin sees both and can filter by tenant', async () => {
    expect(ids(await A.req('GET', '/v1/sandboxes'))).toEqual([a]);
    expect(ids(await B.req('GET', '/v1/sandboxes'))).toEqual([b]);
    expect(ids(await admin.req('GET', '/v1/sandboxes'))).toEqual([a, b].sort());
    expect(ids(await admin.req('GET', '/v1/sandboxes?tenant=globex'))).toEqual([b]);
    // Metadata filters never cross tenants either.
    expect(ids(await A.req('GET', '/v1/sandboxes?metadata=owner%3Dglobex'))).toEqual([]);
    // A tenant cannot use the tenant filter to look elsewhere.
    expect((await A.req('GET', '/v1/sandboxes?tenant=globex')).status).toBe(400);
  });

  it("when a tenant touches another tenant's sandbox on any path, then it gets exactly the 404 of a missing one and nothing changes", async () => {
    const before = (await B.req('GET', `/v1/sandboxes/${b}`)).body;
    const missing = '00000000-0000-4000-8000-000000000000';
    const paths = (id: string): Array<[string, string, unknown?]> => [
      ['GET', `/v1/sandboxes/${id}`],
      ['DELETE', `/v1/sandboxes/${id}`],
      ['POST', `/v1/sandboxes/${id}/renew-expiration`, { expiresAt: new Date(Date.now() + 3_000_000).toISOString() }],
      ['POST', `/v1/sandboxes/${id}/pause`],
      ['POST', `/v1/sandboxes/${id}/resume`],
      ['PATCH', `/v1/sandboxes/${id}/metadata`, { owner: 'acme' }],
      ['GET', `/v1/sandboxes/${id}/endpoints/${HTTP_PORT}`],
      ['GET', `/v1/sandboxes/${id}/events`],
      ['PUT', `/v1/sandboxes/${id}/renew-schedule`, { intervalSeconds: 60, extendBySeconds: 600 }],
      ['GET', `/v1/sandboxes/${id}/renew-schedule`],
      ['DELETE', `/v1/sandboxes/${id}/renew-schedule`],
      ['GET', `/sandboxes/${id}/proxy/${HTTP_PORT}${ECHO_PATH}`],
      ['GET', `/v1/workflows/sandbox/${id}`],
    ];
    const foreign = paths(b);
    const absent = paths(missing);
    for (let i = 0; i < foreign.length; i++) {
      const [method, path, body] = foreign[i]!;
      const got = await A.req(method, path, body);
      const expected = await A.req(absent[i]![0], absent[i]![1], absent[i]![2]);
      expect({ path, status: got.status, code: got.body?.code }).toEqual({ path, status: 404, code: expected.body?.code });
      expect(got.body.message).toBe(expected.body.message.replace(missing, b));
    }
    // A WebSocket upgrade through the proxy is resolved the same way.
    const upgrade = {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    };
    const wsForeign = await A.req('GET', `/sandboxes/${b}/proxy/${HTTP_PORT}/`, undefined, upgrade);
    const wsMissing = await A.req('GET', `/sandboxes/${missing}/proxy/${HTTP_PORT}/`, undefined, upgrade);
    expect([wsForeign.status, wsForeign.body?.code]).toEqual([404, wsMissing.body?.code]);
    // Nothing changed for globex: same state, expiry, metadata; no schedule; no extra history.
    const after = (await B.req('GET', `/v1/sandboxes/${b}`)).body;
    expect(after).toEqual(before);
    expect((await B.req('GET', `/v1/sandboxes/${b}/renew-schedule`)).status).toBe(404);
    const events = (await B.req('GET', `/v1/sandboxes/${b}/events`)).body.events;
    expect(events.map((e: { reason: string }) => e.reason)).toEqual(['provisioning', 'started']);
    // The owner reaches its own sandbox through the proxy.
    await waitFor(
      'globex proxy',
      async () => (await B.req('GET', `/sandboxes/${b}/proxy/${HTTP_PORT}${ECHO_PATH}`)).status === 200,
      15_000,
      200,
    );
  });

  it('when the admin acts, then it sees and changes any tenant’s sandbox but cannot create one', async () => {
    expect((await admin.req('GET', `/v1/sandboxes/${b}`)).body.metadata).toEqual({ owner: 'globex' });
    expect((await admin.req('PATCH', `/v1/sandboxes/${b}/metadata`, { audited: 'yes' })).status).toBe(200);
    expect((await B.req('GET', `/v1/sandboxes/${b}`)).body.metadata).toEqual({ owner: 'globex', audited: 'yes' });
    expect((await admin.req('GET', `/v1/workflows/sandbox/${a}`)).status).toBe(200);
    expect((await admin.req('GET', '/v1/mounts?tenant=globex')).status).toBe(200);
    expect((await A.req('GET', '/v1/mounts?tenant=globex')).status).toBe(400);
    const denied = await admin.req('POST', '/v1/sandboxes', sandboxRequest());
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('AUTH::FORBIDDEN');
  });

  it('when both tenants use the same Idempotency-Key, then each gets its own sandbox', async () => {
    const key = { 'Idempotency-Key': 'same-key-for-both' };
    const ra = await A.req('POST', '/v1/sandboxes', sandboxRequest(), key);
    const rb = await B.req('POST', '/v1/sandboxes', sandboxRequest(), key);
    expect(ra.status).toBe(202);
    expect(rb.status).toBe(202);
    expect(ra.body.id).not.toBe(rb.body.id);
    expect((await A.req('POST', '/v1/sandboxes', sandboxRequest(), key)).body.id).toBe(ra.body.id);
    await A.req('DELETE', `/v1/sandboxes/${ra.body.id}`);
    await B.req('DELETE', `/v1/sandboxes/${rb.body.id}`);
  });

  it("when the containers are inspected, then each carries its tenant and the tenant's namespace", async () => {
    const [ca] = await stack.containers(a);
    const [cb] = await stack.containers(b);
    expect(ca!.Labels).toMatchObject({ 'tidebox.io/tenant': 'acme', 'tidebox.io/namespace': 'team-acme' });
    expect(cb!.Labels).toMatchObject({ 'tidebox.io/tenant': 'globex', 'tidebox.io/namespace': 'globex-ns' });
  });

  afterAll(async () => {
    await A.req('DELETE', `/v1/sandboxes/${a}`);
    await B.req('DELETE', `/v1/sandboxes/${b}`);
  });
});

describe('tenants file hot reload', () => {
  const apiLog = () => readFileSync(join(stack.dataDir, 'api.log'), 'utf8');

  it('when a key is added, then it works within 3 s; a broken edit keeps the old keys; a removed key stops working', async () => {
    const initech: TenantEntry = { name: 'initech', namespace: 'initech', apiKeys: [KEY_C] };
    expect((await as(KEY_C).req('GET', '/v1/sandboxes')).status).toBe(401);

    const written = Date.now();
    writeTenants([acme, globex, initech]);
    await waitFor('the new key', async () => (await as(KEY_C).req('GET', '/v1/sandboxes')).status === 200, 3000, 50);
    expect(Date.now() - written).toBeLessThan(3000);

    // A broken edit: logged, and every key keeps working as before.
    const errorsBefore = apiLog().split('tenants file is invalid').length;
    replaceTenantsFile('[[tenants]]\nname = "acme"\napiKeys = [unterminated');
    await waitFor('the reload to report the broken file', () => apiLog().split('tenants file is invalid').length > errorsBefore, 5000, 100);
    for (const key of [KEY_A, KEY_B, KEY_C]) expect((await as(key).req('GET', '/v1/sandboxes')).status).toBe(200);

    // A valid file without initech: its key stops working, the others go on.
    writeTenants([acme, globex]);
    await waitFor('the removed key to fail', async () => (await as(KEY_C).req('GET', '/v1/sandboxes')).status === 401, 3000, 50);
    expect((await A.req('GET', '/v1/sandboxes')).status).toBe(200);

    // Deleting the file invalidates every tenant key (admin keys come from config and stay).
    rmSync(tenantsFile);
    try {
      await waitFor('tenant keys to fail', async () => (await A.req('GET', '/v1/sandboxes')).status === 401, 3000, 50);
      expect((await B.req('GET', '/v1/sandboxes')).status).toBe(401);
      expect((await admin.req('GET', '/v1/sandboxes')).status).toBe(200);
    } finally {
      writeTenants([acme, globex]);
    }
    await waitFor('keys back', async () => (await A.req('GET', '/v1/sandboxes')).status === 200, 3000, 50);
  });
});

describe('background work stays inside its tenant across restarts', () => {
  it("when the worker and API are killed and restarted, then acme's renew schedule keeps renewing only acme's sandbox and globex's sandbox expires", async () => {
    const a = await create(A, { timeout: 6 });
    const b = await create(B, { timeout: 8 });
    const bExpiresAt = (await B.req('GET', `/v1/sandboxes/${b}`)).body.expiresAt;
    const put = await A.req('PUT', `/v1/sandboxes/${a}/renew-schedule`, { intervalSeconds: 1, extendBySeconds: 15 });
    expect(put.status).toBe(200);
    await waitFor(
      'a first scheduled renewal',
      async () => (await A.req('GET', `/v1/sandboxes/${a}/renew-schedule`)).body.runs >= 1,
      15_000,
      200,
    );

    await Promise.all([stack.worker.kill(), stack.api.kill()]);
    stack.startWorker();
    await Promise.all([stack.startApi(), stack.workerReady()]);

    const afterRestart = Date.parse((await A.req('GET', `/v1/sandboxes/${a}`)).body.expiresAt);
    await waitFor(
      'a renewal after the restart',
      async () => Date.parse((await A.req('GET', `/v1/sandboxes/${a}`)).body.expiresAt) > afterRestart + 1500,
      20_000,
      200,
    );
    // globex's sandbox was never renewed by anyone and expires on time, container and all.
    await waitFor('globex expiry', async () => (await B.req('GET', `/v1/sandboxes/${b}`)).status === 404, 30_000, 200);
    expect(await stack.containers(b)).toHaveLength(0);
    const bEvents = (await B.req('GET', `/v1/sandboxes/${b}/events`)).body;
    expect(bEvents.terminationReason).toBe('expired');
    expect(bEvents.events.filter((e: { actor: string }) => e.actor === 'schedule')).toEqual([]);
    expect(bExpiresAt).toBeDefined();
    // acme's sandbox is alive and was renewed by its schedule.
    const aEvents = (await A.req('GET', `/v1/sandboxes/${a}/events`)).body.events;
    expect(aEvents.at(-1)).toMatchObject({ actor: 'schedule', reason: 'renewed' });
    // The schedule is acme's: globex cannot see it, the admin can.
    expect((await B.req('GET', `/v1/sandboxes/${a}/renew-schedule`)).status).toBe(404);
    expect((await admin.req('GET', `/v1/sandboxes/${a}/renew-schedule`)).status).toBe(200);
    await A.req('DELETE', `/v1/sandboxes/${a}`);
  });
});

describe('per-tenant, per-user storage', () => {
  const writer = (user: string | undefined, volume: Record<string, unknown>) => ({
    entrypoint: ['sh', '-c', `echo ${user ?? 'nobody'} > /data/who; tail -f /dev/null`],
    volumes: [{ name: 'data', mountPath: '/data', subPath: 'work', ...volume }],
    ...(user ? { extensions: { 'tidebox.io/user-id': user } } : {}),
  });
  const waitForFile = (path: string) =>
    waitFor(
      `file ${path}`,
      () => {
        try {
          return readFileSync(path, 'utf8').trim();
        } catch {
          return undefined;
        }
      },
      15_000,
      100,
    );

  it('when two users of one tenant mount the same host subPath, then each gets their own directory, and other tenants another', async () => {
    const host = { host: { path: storage } };
    const created = [await create(A, writer('alice', host)), await create(A, writer('bob', host)), await create(B, writer('alice', host))];
    expect(await waitForFile(join(storage, 'acme/users/alice/work/who'))).toBe('alice');
    expect(await waitForFile(join(storage, 'acme/users/bob/work/who'))).toBe('bob');
    expect(await waitForFile(join(storage, 'globex/users/alice/work/who'))).toBe('alice');
    for (const id of created.slice(0, 2)) await A.req('DELETE', `/v1/sandboxes/${id}`);
    await B.req('DELETE', `/v1/sandboxes/${created[2]}`);
  });

  it('when two users mount the same named volume (pvc) subPath, then each gets their own directory inside it', async () => {
    const pvc = { pvc: { claimName: volumeName } };
    const alice = await create(A, writer('alice', pvc));
    const anonymous = await create(A, writer(undefined, pvc));
    const volume = await stack.docker.getVolume(volumeName).inspect();
    expect(volume.Labels).toMatchObject({ 'tidebox.io/managed': 'true' });
    expect(await waitForFile(join(volume.Mountpoint, 'acme/users/alice/work/who'))).toBe('alice');
    expect(await waitForFile(join(volume.Mountpoint, 'acme/users/default/work/who'))).toBe('nobody');
    // createIfNotExists: false on a missing volume fails the sandbox instead of creating one.
    const strict = await A.req(
      'POST',
      '/v1/sandboxes',
      sandboxRequest(writer('alice', { pvc: { claimName: `${volumeName}-missing`, createIfNotExists: false } })),
    );
    expect(strict.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::RUNTIME_REJECTED' });
    for (const id of [alice, anonymous, strict.body.id]) await A.req('DELETE', `/v1/sandboxes/${id}`);
  });

  it('when a subPath escapes with "..", an absolute path, or a symlink out of the user area, then 400 and nothing is created', async () => {
    const victim = join(storage, 'acme/users/bob/secret');
    mkdirSync(victim, { recursive: true });
    mkdirSync(join(storage, 'acme/users/alice'), { recursive: true });
    // What a container of alice's could have done inside its own directory:
    symlinkSync('/etc', join(storage, 'acme/users/alice/to-etc'));
    symlinkSync(victim, join(storage, 'acme/users/alice/to-bob'));
    const before = ids(await A.req('GET', '/v1/sandboxes'));
    const attempts: Array<[Record<string, unknown>, string]> = [
      [{ host: { path: storage }, subPath: '../bob' }, 'subPath'],
      [{ host: { path: storage }, subPath: '/etc' }, 'subPath'],
      [{ host: { path: storage }, subPath: 'to-etc' }, 'symlink escape'],
      [{ host: { path: storage }, subPath: 'to-bob/more' }, 'symlink escape'],
      [{ pvc: { claimName: volumeName }, subPath: 'a/../../bob' }, 'subPath'],
    ];
    for (const [volume, text] of attempts) {
      const r = await A.req(
        'POST',
        '/v1/sandboxes',
        sandboxRequest({
          volumes: [{ name: 'data', mountPath: '/data', ...volume }],
          extensions: { 'tidebox.io/user-id': 'alice' },
        }),
      );
      expect({ volume, status: r.status, code: r.body.code }).toEqual({ volume, status: 400, code: 'SANDBOX::INVALID_PARAMETER' });
      expect(r.body.message).toContain(text);
    }
    const badUser = await A.req('POST', '/v1/sandboxes', sandboxRequest({ extensions: { 'tidebox.io/user-id': '../bob' } }));
    expect(badUser.status).toBe(400);
    expect(ids(await A.req('GET', '/v1/sandboxes'))).toEqual(before);
  });
});

describe('execd across tenants', () => {
  it("when another tenant reaches for a sandbox's execd, with its own key or a token of its own sandbox, then 404 and nothing runs", async () => {
    const a = await create(A);
    const b = await create(B);
    try {
      const execd = (id: string) => `/v1/sandboxes/${id}/proxy/44772`;
      const tokenOf = async (who: typeof A, id: string) =>
        (await who.req('GET', `/v1/sandboxes/${id}/endpoints/44772`)).body.headers['X-EXECD-ACCESS-TOKEN'] as string;
      const touch = { command: 'touch /pwned' };
      expect((await B.req('GET', `/v1/sandboxes/${a}/endpoints/44772`)).status).toBe(404);
      expect((await B.req('POST', `${execd(a)}/command`, touch)).status).toBe(404);
      const tokenB = await tokenOf(B, b);
      const withToken = await stack.request('POST', `${execd(a)}/command`, touch, { 'X-EXECD-ACCESS-TOKEN': tokenB });
      expect(withToken.status).toBe(404);
      expect(withToken.body).toEqual({ code: 'SANDBOX::NOT_FOUND', message: `sandbox ${a} not found` });

      // Nothing ran in A's sandbox; A's own key and token reach it.
      expect((await A.req('GET', `${execd(a)}/files/info?path=/pwned`)).status).toBe(404);
      const tokenA = await tokenOf(A, a);
      const own = await stack.request('POST', `${execd(a)}/command`, { command: 'echo mine' }, { 'X-EXECD-ACCESS-TOKEN': tokenA });
      expect(own.status).toBe(200);
      expect(String(own.body)).toContain('"type":"stdout","text":"mine"');
    } finally {
      await A.req('DELETE', `/v1/sandboxes/${a}`);
      await B.req('DELETE', `/v1/sandboxes/${b}`);
    }
  });
});
