import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { checkRuntime } from '../../activities/docker/host';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

const API_KEY = 'test-key-0123456789abcdef';
let stack: Stack;
let allowedDir: string;

beforeAll(async () => {
  allowedDir = mkdtempSync(join(tmpdir(), 'tidebox-allowed-'));
  mkdirSync(join(allowedDir, 'work'));
  writeFileSync(join(allowedDir, 'work', 'marker'), 'from-the-host\n');
  // The legacy storage layout: these tests pin host volumes as they were before tenancy (docs/tenancy.md).
  stack = await Stack.start({
    apiKey: API_KEY,
    // The OCI runtime named explicitly (docker.runtime; gVisor's "runsc" on a host that has it).
    config: {
      sandbox: { allowedHostPaths: [allowedDir], storageLayout: 'legacy' },
      docker: { startupGraceMs: 1000, runtime: 'runc', logMaxSize: '100k', logMaxFiles: 2, nofileLimit: 4096 },
    },
  });
});
afterAll(async () => {
  await stack?.destroy();
  rmSync(allowedDir, { recursive: true, force: true });
});

describe('what one container may take of the host', () => {
  it('when a sandbox prints ten times its log allowance, then its log stays within logMaxSize × logMaxFiles, and ulimit -n is nofileLimit', async () => {
    const line = '0123456789'.repeat(10);
    const script = `i=0; while [ $i -lt 20000 ]; do echo ${line}; i=$((i+1)); done; touch /tmp/printed; exec tail -f /dev/null`;
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', script] }));
    expect(created.body.status.state).toBe('Running');
    const id = created.body.id as string;
    await waitFor(
      'the sandbox to finish printing 2 MB',
      async () => (await stack.exec(id, 'test -f /tmp/printed')).code === 0,
      60_000,
      250,
    );
    const [c] = await stack.containers(id);
    const logPath = (await stack.docker.getContainer(c!.Id).inspect()).LogPath;
    const files = readdirSync(dirname(logPath)).filter((f) => f.startsWith(basename(logPath)));
    const total = files.reduce((sum, f) => sum + statSync(join(dirname(logPath), f)).size, 0);
    expect(files.length).toBeLessThanOrEqual(2);
    expect(total).toBeLessThanOrEqual(2 * 100 * 1024 + 1024);
    expect(total).toBeGreaterThan(100 * 1024); // it did rotate: the sandbox printed far more than one file holds
    expect((await stack.exec(id, 'ulimit -n')).output.trim()).toBe('4096');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('the OCI runtime', () => {
  it('when docker.runtime names a runtime the engine does not have, then the worker refuses to start, naming the ones it has', async () => {
    await expect(checkRuntime(stack.docker, 'runc')).resolves.toBeUndefined();
    await expect(checkRuntime(stack.docker, 'runsc-not-installed')).rejects.toThrow(
      /docker.runtime "runsc-not-installed" is not registered with the Docker engine \(it has: .*runc/,
    );
  });
});

describe('create → Running → delete', () => {
  it('when a sandbox is created, then its container runs with the limits and security options, and delete removes it', async () => {
    // This tenant has no limit: its share is only recorded, beside the actor's start — and recorded it is.
    const held = async () => (await stack.request('GET', '/v1/tenants/me/usage')).body.usage.sandboxes as number;
    const before = await held();
    const created = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({
        resourceLimits: { cpu: '500m', memory: '128Mi' },
        env: { GREETING: 'hello' },
        metadata: { team: 'core' },
        volumes: [{ name: 'work', host: { path: allowedDir }, subPath: 'work', mountPath: '/work', readOnly: true }],
      }),
    );
    expect(created.status).toBe(202);
    expect(created.body.status.state).toBe('Running');
    expect(created.body.workflowId).toBe(`sandbox/${created.body.id}`);
    expect(created.headers.get('location')).toBe(`/v1/sandboxes/${created.body.id}`);
    const id: string = created.body.id;

    const [container, ...others] = await stack.containers(id);
    expect(others).toHaveLength(0);
    const info = await stack.docker.getContainer(container!.Id).inspect();
    expect(info.State.Running).toBe(true);
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.Memory).toBe(128 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(512);
    expect(info.HostConfig.Runtime).toBe('runc');
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges:true');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID', 'KILL', 'NET_BIND_SERVICE']);
    expect(info.Config.Env).toContain('GREETING=hello');
    // The host directory reached the container through a pin (docs/security.md): exactly the checked
    // directory, nosuid and nodev; the running container holds its own copy and the pin is released.
    expect(info.Mounts).toEqual([expect.objectContaining({ Source: join(stack.dataDir, 'binds', id, '0'), Destination: '/work' })]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(join(stack.dataDir, 'binds', id));
    const seen = await stack.exec(id, "cat /work/marker; grep ' /work ' /proc/mounts");
    expect(seen.output).toContain('from-the-host');
    expect(seen.output).toMatch(/ \/work \S+ ro,nosuid,nodev/);
    expect((await stack.exec(id, 'touch /work/new')).code).not.toBe(0);

    const got = await stack.request('GET', `/v1/sandboxes/${id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      id,
      image: { uri: 'tidebox/busybox:latest' },
      metadata: { team: 'core' },
      status: { state: 'Running' },
    });
    expect(got.body.expiresAt).toBeDefined();
    // The unversioned path serves the same resource.
    expect((await stack.request('GET', `/sandboxes/${id}`)).body.id).toBe(id);

    await waitFor('the share to be recorded', async () => (await held()) === before + 1, 10_000, 100);

    const deleted = await stack.request('DELETE', `/v1/sandboxes/${id}`);
    expect(deleted.status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);
    await waitFor('the share to be given back', async () => (await held()) === before, 10_000, 100);
    const gone = await stack.request('GET', `/v1/sandboxes/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('SANDBOX::NOT_FOUND');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(404);
  });

  it('when the entrypoint exits at once, then the sandbox is Failed with a reason and no container is left', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', 'echo boom; exit 3'] }));
    expect(created.status).toBe(202);
    expect(created.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::CONTAINER_EXITED' });
    expect(created.body.status.message).toContain('code 3');
    expect(await stack.containers(created.body.id)).toHaveLength(0);
    expect((await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`)).status).toBe(204);
  });

  it('when a manual-cleanup sandbox is created, then it has no expiresAt', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: null }));
    expect(created.status).toBe(202);
    expect(created.body.expiresAt).toBeUndefined();
    expect('expiresAt' in created.body).toBe(false);
    expect(Object.values(created.body)).not.toContain(null);
    expect((await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`)).status).toBe(204);
  });
});

describe('idempotency', () => {
  it('when two POSTs carry the same Idempotency-Key, then one sandbox and one container exist', async () => {
    const headers = { 'Idempotency-Key': `key-${Date.now()}` };
    const [a, b] = await Promise.all([
      stack.request('POST', '/v1/sandboxes', sandboxRequest(), headers),
      stack.request('POST', '/v1/sandboxes', sandboxRequest(), headers),
    ]);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    expect(await stack.containers(a.body.id)).toHaveLength(1);

    const different = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { other: 'body' } }), headers);
    expect(different.status).toBe(409);
    expect(different.body.code).toBe('SANDBOX::IDEMPOTENCY_CONFLICT');

    expect((await stack.request('DELETE', `/v1/sandboxes/${a.body.id}`)).status).toBe(204);
    const reused = await stack.request('POST', '/v1/sandboxes', sandboxRequest(), headers);
    expect(reused.status).toBe(409);
    expect(await stack.containers(a.body.id)).toHaveLength(0);
  });
});

describe('list', () => {
  it('when sandboxes carry metadata, then LIST filters states with OR and metadata with AND, newest first, paged', async () => {
    const run = `run${Date.now()}`;
    const ids: string[] = [];
    for (const [i, team] of ['red', 'blue', 'red'].entries()) {
      const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { run, team, n: String(i) } }));
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    const listed = (q: string) => stack.request('GET', `/v1/sandboxes?${q}`);
    const byRun = await waitFor('visibility to index 3 sandboxes', async () => {
      const r = await listed(`metadata=${encodeURIComponent(`run=${run}`)}`);
      return r.body.items.length === 3 ? r : undefined;
    });
    expect(byRun.body.items.map((s: { id: string }) => s.id)).toEqual([...ids].reverse());
    expect(byRun.body.pagination).toEqual({ page: 1, pageSize: 20, totalItems: 3, totalPages: 1, hasNextPage: false });

    const red = await listed(`metadata=${encodeURIComponent(`run=${run}&team=red`)}`);
    expect(red.body.items.map((s: { id: string }) => s.id).sort()).toEqual([ids[0], ids[2]].sort());

    const paged = await listed(`metadata=${encodeURIComponent(`run=${run}`)}&pageSize=2&page=2`);
    expect(paged.body.items.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
    expect(paged.body.pagination).toEqual({ page: 2, pageSize: 2, totalItems: 3, totalPages: 2, hasNextPage: false });

    const states = await listed(`metadata=${encodeURIComponent(`run=${run}`)}&state=Paused&state=Running`);
    expect(states.body.items).toHaveLength(3);
    const none = await listed(`metadata=${encodeURIComponent(`run=${run}`)}&state=Paused`);
    expect(none.body.items).toHaveLength(0);

    expect((await listed('pageSize=201')).status).toBe(400);
    expect((await listed('state=Sleeping')).status).toBe(400);
    for (const id of ids) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('bad input changes nothing', () => {
  const cases: Array<[string, unknown, Record<string, string>?]> = [
    ['missing image', { entrypoint: ['sh'], timeout: 600 }],
    ['timeout below the minimum', sandboxRequest({ timeout: 1 })],
    ['cpu "abc"', sandboxRequest({ resourceLimits: { cpu: 'abc', memory: '64Mi' } })],
    ['a 10 MB body', sandboxRequest({ metadata: { big: 'x'.repeat(10 * 1024 * 1024) } })],
    ['.. in a host path', sandboxRequest({ volumes: [{ name: 'v', host: { path: `/tmp/../etc` }, mountPath: '/v' }] })],
    ['a host path outside allowedHostPaths', sandboxRequest({ volumes: [{ name: 'v', host: { path: '/etc' }, mountPath: '/v' }] })],
    ['a non-JSON body', '{"image": nope', { 'content-type': 'application/json' }],
    ['a text body', 'image=busybox', { 'content-type': 'text/plain' }],
    ['a relative mount path', sandboxRequest({ volumes: [{ name: 'v', host: { path: '/tmp' }, mountPath: 'v' }] })],
    ['entrypoint missing', { image: { uri: 'tidebox/busybox:latest' }, timeout: 600 }],
  ];

  // Every row has three entries: jest reads a test function with more parameters than a row has as a `done` callback.
  it.each(cases.map(([name, body, headers]) => [name, body, headers ?? {}] as const))(
    'when the request has %s, then 400 with the error envelope and no sandbox',
    async (_name, body, headers) => {
      const before = await stack.containers();
      const r = await stack.request('POST', '/v1/sandboxes', body, headers);
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ code: expect.stringMatching(/^SANDBOX::/), message: expect.any(String) });
      expect(r.headers.get('x-request-id')).toBeTruthy();
      expect((await stack.containers()).length).toBe(before.length);
    },
  );

  it('when a host path is a symlink out of the allowed prefix, then the sandbox fails and no container runs', async () => {
    const link = join(allowedDir, 'escape');
    symlinkSync('/etc', link);
    const before = (await stack.containers()).length;
    const r = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ volumes: [{ name: 'v', host: { path: link }, mountPath: '/v' }] }),
    );
    expect(r.status).toBe(400);
    expect(r.body.message).toContain('outside the allowed host paths');
    expect(await stack.containers()).toHaveLength(before);
  });

  it('when renewing with a malformed expiresAt, then 400', async () => {
    const r = await stack.request('POST', '/v1/sandboxes/whatever/renew-expiration', { expiresAt: 'tomorrow' });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('SANDBOX::INVALID_PARAMETER');
  });
});

describe('auth and request ids', () => {
  it('when the API key is missing or wrong, then 401 and nothing is created', async () => {
    const before = (await stack.containers()).length;
    const missing = await stack.request('POST', '/v1/sandboxes', sandboxRequest(), { 'OPEN-SANDBOX-API-KEY': '' });
    expect(missing.status).toBe(401);
    expect(missing.body.code).toBe('AUTH::MISSING_API_KEY');
    const wrong = await stack.request('GET', '/v1/sandboxes', undefined, { 'OPEN-SANDBOX-API-KEY': 'not-the-key-at-all' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('AUTH::INVALID_API_KEY');
    expect(await stack.containers()).toHaveLength(before);
  });

  it('when the client sends X-Request-ID, then it is echoed; otherwise one is generated', async () => {
    const echoed = await stack.request('GET', '/health', undefined, { 'X-Request-ID': 'abc-123' });
    expect(echoed.status).toBe(200);
    expect(echoed.headers.get('x-request-id')).toBe('abc-123');
    const generated = await stack.request('GET', '/v1/sandboxes/nope');
    expect(generated.status).toBe(404);
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
