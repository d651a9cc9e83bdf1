import { randomBytes } from 'node:crypto';
import { Sandbox } from '@alibaba-group/opensandbox';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * The execd API served by Tidebox, through the published OpenSandbox TypeScript SDK, unmodified,
 * with its health check on: commands (foreground, background, interrupt), files (20 MB round trip,
 * list, info, move, delete, directories, search, replace), tenant isolation and a paused sandbox.
 * Nothing runs inside the image but what the commands start: busybox has no execd.
 */
const API_KEY = 'execd-test-key-0123456789';
let stack: Stack;
let sandbox: Sandbox;

beforeAll(async () => {
  stack = await Stack.start({ apiKey: API_KEY });
  sandbox = await Sandbox.create({
    connectionConfig: { domain: stack.baseUrl, apiKey: API_KEY },
    image: 'tidebox/busybox:latest',
    resource: { cpu: '500m', memory: '128Mi' },
    timeoutSeconds: 600,
  });
});
afterAll(async () => {
  await sandbox?.kill().catch(() => undefined);
  await stack?.destroy();
});

describe('commands', () => {
  it('when the SDK runs echo, then stdout is the line and the exit code 0', async () => {
    const run = await sandbox.commands.run('echo hi');
    expect(run.logs.stdout.map((m) => m.text)).toEqual(['hi']);
    expect(run.logs.stderr).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('when a command writes to stderr and exits 3, then both are reported, in order per stream', async () => {
    const run = await sandbox.commands.run('echo one; echo oops >&2; echo two; exit 3');
    expect(run.logs.stdout.map((m) => m.text)).toEqual(['one', 'two']);
    expect(run.logs.stderr.map((m) => m.text)).toEqual(['oops']);
    expect(run.exitCode).toBe(3);
    expect(run.error).toMatchObject({ name: 'CommandExecError', value: '3' });
  });

  it('when cwd, envs and uid are given, then the command runs there, with them, as that user', async () => {
    const run = await sandbox.commands.run('pwd; echo "$GREETING"; id -u', {
      workingDirectory: '/tmp',
      envs: { GREETING: "it's a\nmulti-line value" },
      uid: 1234,
    });
    expect(run.logs.stdout.map((m) => m.text)).toEqual(['/tmp', "it's a", 'multi-line value', '1234']);
  });

  it('when a command runs in the background, then its status and logs are read until it ends', async () => {
    const run = await sandbox.commands.run('echo started; sleep 1; echo finished', { background: true });
    expect(run.id).toMatch(/^[0-9a-f]{32}$/);
    const status = await waitFor('the background command to end', async () => {
      const s = await sandbox.commands.getCommandStatus(run.id!);
      return s.running ? undefined : s;
    });
    expect(status).toMatchObject({ id: run.id, content: 'echo started; sleep 1; echo finished', running: false, exitCode: 0 });
    const logs = await sandbox.commands.getBackgroundCommandLogs(run.id!);
    expect(logs.content).toBe('started\nfinished\n');
    const tail = await sandbox.commands.getBackgroundCommandLogs(run.id!, 'started\n'.length);
    expect(tail).toEqual({ content: 'finished\n', cursor: logs.cursor });
  });

  it('when sleep 60 is interrupted, then it has ended within a second', async () => {
    const run = await sandbox.commands.run('sleep 60', { background: true });
    const asked = Date.now();
    await sandbox.commands.interrupt(run.id!);
    const status = await waitFor(
      'the interrupted command to end',
      async () => {
        const s = await sandbox.commands.getCommandStatus(run.id!);
        return s.running ? undefined : s;
      },
      5_000,
      20,
    );
    expect(Date.now() - asked).toBeLessThan(1_000);
    expect(status).toMatchObject({ exitCode: -1, error: 'signal: terminated' });
  });

  it('when a foreground command outlives its timeout, then its process group is killed', async () => {
    const started = Date.now();
    const run = await sandbox.commands.run('sleep 30 & sleep 30; echo never', { timeoutSeconds: 1 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.exitCode).toBe(-1);
    expect(run.logs.stdout).toEqual([]);
    const ps = await sandbox.commands.run('ps -o comm | grep -c "^sleep" || true');
    expect(ps.logs.stdout.map((m) => m.text)).toEqual(['0']);
  });
});

describe('files', () => {
  it('when a 20 MB binary file is written and read, then the bytes are the same', async () => {
    const data = randomBytes(20 * 1024 * 1024);
    await sandbox.files.writeFiles([{ path: '/data/blob.bin', data, mode: 640 }]);
    const back = await sandbox.files.readBytes('/data/blob.bin');
    expect(Buffer.from(back).equals(data)).toBe(true);
    const info = (await sandbox.files.getFileInfo(['/data/blob.bin']))['/data/blob.bin']!;
    expect(info).toMatchObject({ path: '/data/blob.bin', type: 'file', size: data.length, mode: 640, owner: 'root' });
    const part = await sandbox.files.readBytes('/data/blob.bin', { range: 'bytes=10-19' });
    expect(Buffer.from(part).equals(data.subarray(10, 20))).toBe(true);
  });

  it('when files are listed, moved, searched, replaced and removed, then each answer matches the container', async () => {
    await sandbox.files.createDirectories([{ path: '/work/src/deep', mode: 750 }]);
    await sandbox.files.writeFiles([
      { path: '/work/src/a.txt', data: 'hello world, hello\n' },
      { path: '/work/src/b.py', data: 'print(1)\n' },
      { path: '/work/src/deep/c.txt', data: 'deep\n' },
    ]);
    const listed = await sandbox.files.listDirectory({ path: '/work', depth: 2 });
    expect(listed.map((f) => [f.path, f.type])).toEqual([
      ['/work/src', 'directory'],
      ['/work/src/a.txt', 'file'],
      ['/work/src/b.py', 'file'],
      ['/work/src/deep', 'directory'],
    ]);
    expect(listed.find((f) => f.path === '/work/src/deep')!.mode).toBe(750);

    const found = await sandbox.files.search({ path: '/work', pattern: '*.txt' });
    expect(found.map((f) => f.path)).toEqual(['/work/src/a.txt', '/work/src/deep/c.txt']);

    const [replaced] = await sandbox.files.replaceContentsDetailed([{ path: '/work/src/a.txt', oldContent: 'hello', newContent: 'bye' }]);
    expect(replaced).toEqual({ path: '/work/src/a.txt', replacedCount: 2 });
    expect(await sandbox.files.readFile('/work/src/a.txt')).toBe('bye world, bye\n');

    await sandbox.files.moveFiles([{ src: '/work/src/b.py', dest: '/work/moved/b.py' }]);
    expect(await sandbox.files.readFile('/work/moved/b.py')).toBe('print(1)\n');
    await expect(sandbox.files.getFileInfo(['/work/src/b.py'])).rejects.toMatchObject({ statusCode: 404 });

    await sandbox.files.setPermissions([{ path: '/work/moved/b.py', mode: 600, owner: 'nobody' }]);
    expect((await sandbox.files.getFileInfo(['/work/moved/b.py']))['/work/moved/b.py']).toMatchObject({ mode: 600, owner: 'nobody' });

    await sandbox.files.deleteFiles(['/work/src/a.txt']);
    await sandbox.files.deleteDirectories(['/work/src']);
    expect((await sandbox.files.listDirectory({ path: '/work' })).map((f) => f.path)).toEqual(['/work/moved']);
    const check = await sandbox.commands.run('ls -R /work');
    expect(check.logs.stdout.map((m) => m.text)).toEqual(['/work:', 'moved', '\n', '/work/moved:', 'b.py']);
  });

  it('when a path does not exist, then 404 FILE_NOT_FOUND', async () => {
    await expect(sandbox.files.readFile('/no/such/file')).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('access', () => {
  it('when the endpoint of 44772 is read, then it is this API with a per-sandbox token; the token opens that sandbox only', async () => {
    const endpoint = await stack.request('GET', `/v1/sandboxes/${sandbox.id}/endpoints/44772`);
    expect(endpoint.status).toBe(200);
    const token: string = endpoint.body.headers['X-EXECD-ACCESS-TOKEN'];
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const base = `http://${endpoint.body.endpoint}`;
    expect((await fetch(`${base}/ping`, { headers: { 'X-EXECD-ACCESS-TOKEN': token } })).status).toBe(200);
    expect((await fetch(`${base}/ping`)).status).toBe(401);
    expect((await fetch(`${base}/ping`, { headers: { 'X-EXECD-ACCESS-TOKEN': 'x'.repeat(43) } })).status).toBe(404);

    const other = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    try {
      const otherBase = base.replace(sandbox.id, other.body.id);
      const r = await fetch(`${otherBase}/command`, {
        method: 'POST',
        headers: { 'X-EXECD-ACCESS-TOKEN': token, 'content-type': 'application/json' },
        body: JSON.stringify({ command: 'touch /pwned' }),
      });
      expect(r.status).toBe(404);
      expect(await r.json()).toEqual({ code: 'SANDBOX::NOT_FOUND', message: `sandbox ${other.body.id} not found` });
    } finally {
      await stack.request('DELETE', `/v1/sandboxes/${other.body.id}`);
    }
  });

  it('when the sandbox is paused, then execd answers 409 and nothing runs', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    const id: string = created.body.id;
    try {
      const endpoint = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/44772`);
      const headers = { ...endpoint.body.headers, 'content-type': 'application/json' };
      const base = `http://${endpoint.body.endpoint}`;
      expect((await stack.request('POST', `/v1/sandboxes/${id}/pause`)).status).toBe(202);
      await waitFor(
        'the sandbox to be paused',
        async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state === 'Paused',
      );
      const r = await fetch(`${base}/command`, { method: 'POST', headers, body: JSON.stringify({ command: 'echo hi' }) });
      expect(r.status).toBe(409);
      expect(((await r.json()) as { code: string }).code).toBe('SANDBOX::INVALID_STATE');
    } finally {
      await stack.request('DELETE', `/v1/sandboxes/${id}`);
    }
  });
});
