import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Sandbox } from '@alibaba-group/opensandbox';
import * as tar from 'tar-stream';
import { sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';

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
  // Views reused for the longest the API allows: every test here shows that the changes this API makes are seen at once.
  stack = await Stack.start({ apiKey: API_KEY, config: { server: { dataPlaneViewMs: 10_000 } } });
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

/** Bytes as an async iterable of 1 MiB pieces: the SDK sends it chunked, without a Content-Length. */
async function* inPieces(data: Buffer): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += 1024 * 1024) yield data.subarray(at, at + 1024 * 1024);
}

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

describe('sessions', () => {
  it('when commands run in one session, then variables, functions and the directory carry over; a run cwd applies to that run only', async () => {
    const id = await sandbox.commands.createSession({ workingDirectory: '/srv/app' });
    const first = await sandbox.commands.runInSession(id, 'X=42; f() { echo "fn $1"; }; cd /tmp; echo set');
    expect(first.logs.stdout.map((m) => m.text)).toEqual(['set']);
    expect(first.exitCode).toBe(0);
    const elsewhere = await sandbox.commands.runInSession(id, 'pwd', { workingDirectory: '/' });
    expect(elsewhere.logs.stdout.map((m) => m.text)).toEqual(['/']);
    const second = await sandbox.commands.runInSession(id, 'echo "$X"; f arg; pwd; echo err >&2; false');
    expect(second.logs.stdout.map((m) => m.text)).toEqual(['42', 'fn arg', '/tmp']);
    expect(second.logs.stderr.map((m) => m.text)).toEqual(['err']);
    expect(second.exitCode).toBe(1);
    // A command that reads stdin gets EOF, not the session's next lines.
    const cat = await sandbox.commands.runInSession(id, 'cat; echo after-cat');
    expect(cat.logs.stdout.map((m) => m.text)).toEqual(['after-cat']);
    await sandbox.commands.deleteSession(id);
    await expect(sandbox.commands.runInSession(id, 'echo gone')).rejects.toMatchObject({ statusCode: 404 });
  });

  it('when a session run is interrupted, then it ends at once and the session is gone', async () => {
    const id = await sandbox.commands.createSession();
    const run = sandbox.commands.runInSession(id, 'sleep 61');
    await waitFor('the session to run sleep', async () => {
      const ps = await sandbox.commands.run('ps -o args | grep -c "^sleep 61" || true');
      return ps.logs.stdout[0]?.text === '1';
    });
    // One run at a time: another is refused while it runs.
    await expect(sandbox.commands.runInSession(id, 'true')).rejects.toMatchObject({ statusCode: 409 });
    const asked = Date.now();
    await sandbox.commands.interrupt(id);
    expect((await run).exitCode).not.toBe(0);
    expect(Date.now() - asked).toBeLessThan(1_000);
    await expect(sandbox.commands.runInSession(id, 'echo still-here')).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('metrics', () => {
  it('when metrics are read, then they are the sandbox limits and usage from the engine', async () => {
    const m = await sandbox.metrics.getMetrics();
    expect(m.cpuCount).toBe(0.5);
    expect(m.memoryTotalMiB).toBe(128);
    expect(m.memoryUsedMiB).toBeGreaterThan(0);
    expect(m.memoryUsedMiB).toBeLessThan(128);
    expect(Math.abs(m.timestamp - Date.now())).toBeLessThan(10_000);
  });
});

describe('files', () => {
  it('when a 20 MB binary file is written and read, then the bytes are the same', async () => {
    const data = randomBytes(20 * 1024 * 1024);
    await sandbox.files.writeFiles([{ path: '/data/blob.bin', data, mode: 640 }]);
    const back = await sandbox.files.readBytes('/data/blob.bin');
    expect(Buffer.from(back).equals(data)).toBe(true);
    // The same bytes as a stream: chunked, no Content-Length, so not held in memory but streamed in.
    await sandbox.files.writeFiles([{ path: '/data/streamed.bin', data: inPieces(data) }]);
    expect(Buffer.from(await sandbox.files.readBytes('/data/streamed.bin')).equals(data)).toBe(true);
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

  it('when a file is written where a directory is, then 400 says why and the request ends', async () => {
    await sandbox.files.createDirectories([{ path: '/taken/dir', mode: 755 }]);
    await expect(sandbox.files.writeFiles([{ path: '/taken/dir', data: randomBytes(3 * 1024 * 1024) }])).rejects.toMatchObject({
      statusCode: 400,
    });
    expect((await sandbox.files.getFileInfo(['/taken/dir']))['/taken/dir']!.type).toBe('directory');
    await sandbox.files.writeFiles([{ path: '/taken/after.txt', data: 'still serving' }]);
    expect(await sandbox.files.readFile('/taken/after.txt')).toBe('still serving');
  });

  it('when a path does not exist, then 404 FILE_NOT_FOUND', async () => {
    await expect(sandbox.files.readFile('/no/such/file')).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('an image without a shell', () => {
  const IMAGE = 'tidebox/no-shell:test';

  /** One static binary at /busybox and nothing else: no /bin/sh. */
  async function noShellImage(): Promise<void> {
    const source = (await stack.docker.createContainer({ Image: TEST_IMAGE, Cmd: ['true'] })) as unknown as {
      getArchive(o: { path: string }): Promise<Readable>;
      remove(o: { force: boolean }): Promise<void>;
    };
    try {
      const extract = tar.extract();
      const binary = await new Promise<Buffer>((resolve, reject) => {
        extract.on('entry', (_h, stream, next) => {
          const chunks: Buffer[] = [];
          stream.on('data', (c) => chunks.push(c as Buffer));
          stream.on('end', () => {
            resolve(Buffer.concat(chunks));
            next();
          });
        });
        extract.on('error', reject);
        void source.getArchive({ path: '/bin/busybox' }).then((s) => s.pipe(extract));
      });
      const pack = tar.pack();
      pack.entry({ name: 'busybox', mode: 0o755 }, binary);
      pack.finalize();
      const stream = await stack.docker.importImage(pack as unknown as Readable, { repo: 'tidebox/no-shell', tag: 'test' });
      await new Promise((resolve, reject) => stack.docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve(undefined))));
    } finally {
      await source.remove({ force: true });
    }
  }

  it('when the image has no shell, then upload, read, info and plain commands work, and shell syntax is refused clearly', async () => {
    await noShellImage();
    const created = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ image: { uri: IMAGE }, entrypoint: ['/busybox', 'sleep', '600'] }),
    );
    expect(created.body.status.state).toBe('Running');
    const id: string = created.body.id;
    try {
      const noShell = await Sandbox.connect({ sandboxId: id, connectionConfig: { domain: stack.baseUrl, apiKey: API_KEY } });
      const data = randomBytes(1024 * 1024);
      await noShell.files.writeFiles([{ path: '/data/in/blob.bin', data }]);
      expect(Buffer.from(await noShell.files.readBytes('/data/in/blob.bin')).equals(data)).toBe(true);
      expect((await noShell.files.getFileInfo(['/data/in']))['/data/in']).toMatchObject({ type: 'directory', mode: 755 });
      // Chunked (no Content-Length): spooled to disk first, then through the archive API.
      await noShell.files.writeFiles([{ path: '/data/in/spooled.bin', data: inPieces(data) }]);
      expect(Buffer.from(await noShell.files.readBytes('/data/in/spooled.bin')).equals(data)).toBe(true);
      await noShell.files.writeFiles([{ path: '/data/note.txt', data: 'a-b-a' }]);
      await noShell.files.replaceContents([{ path: '/data/note.txt', oldContent: 'a', newContent: 'x' }]);
      expect(await noShell.files.readFile('/data/note.txt')).toBe('x-b-x');

      const plain = await noShell.commands.run('/busybox cat /data/note.txt');
      expect(plain.logs.stdout.map((m) => m.text)).toEqual(['x-b-x']);
      await expect(noShell.commands.run('echo $HOME | /busybox wc')).rejects.toMatchObject({ statusCode: 400 });
      await expect(noShell.files.listDirectory({ path: '/data' })).rejects.toMatchObject({ statusCode: 400 });
      expect(await stack.containers(id)).toHaveLength(1);
    } finally {
      await stack.request('DELETE', `/v1/sandboxes/${id}`);
      await stack.docker.getImage(IMAGE).remove({ force: true });
    }
  });
});

describe('uploads as the Python SDK sends them', () => {
  it('when one request carries several metadata/file pairs, chunked, then every file is written with its mode', async () => {
    const endpoint = await stack.request('GET', `/v1/sandboxes/${sandbox.id}/endpoints/44772`);
    const boundary = 'tidebox-test-boundary';
    const part = (name: string, filename: string, type: string, body: string) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n${body}\r\n`;
    const body =
      part('metadata', 'metadata', 'application/json', JSON.stringify({ path: '/multi/one.txt', owner: null, group: null, mode: 755 })) +
      part('file', 'one.txt', 'application/octet-stream', 'first') +
      part('metadata', 'metadata', 'application/json', JSON.stringify({ path: '/multi/two.txt', owner: null, group: null, mode: 600 })) +
      part('file', 'two.txt', 'application/octet-stream', 'second') +
      `--${boundary}--\r\n`;
    const chunked = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(body));
        c.close();
      },
    });
    const r = await fetch(`http://${endpoint.body.endpoint}/files/upload`, {
      method: 'POST',
      headers: { ...endpoint.body.headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    expect(r.status).toBe(200);
    const info = await sandbox.files.getFileInfo(['/multi/one.txt', '/multi/two.txt']);
    expect([info['/multi/one.txt']!.mode, info['/multi/two.txt']!.mode]).toEqual([755, 600]);
    expect(await sandbox.files.readFile('/multi/two.txt')).toBe('second');

    const unpaired = await fetch(`http://${endpoint.body.endpoint}/files/upload`, {
      method: 'POST',
      headers: { ...endpoint.body.headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: part('file', 'x', 'application/octet-stream', 'x') + `--${boundary}--\r\n`,
    });
    expect(unpaired.status).toBe(400);
    expect(((await unpaired.json()) as { code: string }).code).toBe('INVALID_FILE');
  });
});

describe('held uploads of other shapes than the SDKs send', () => {
  const boundary = 'tidebox-held-boundary';
  const meta = (path: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="metadata"; filename="metadata"\r\nContent-Type: application/json\r\n\r\n` +
    `${JSON.stringify({ path, owner: null, group: null, mode: 644 })}\r\n`;
  const fileHead = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const close = `\r\n--${boundary}--\r\n`;
  async function execdUrl(): Promise<{ base: string; headers: Record<string, string> }> {
    const endpoint = await stack.request('GET', `/v1/sandboxes/${sandbox.id}/endpoints/44772`);
    return { base: `http://${endpoint.body.endpoint}`, headers: endpoint.body.headers };
  }
  async function upload(body: Buffer): Promise<number> {
    const { base, headers } = await execdUrl();
    const r = await fetch(`${base}/files/upload`, {
      method: 'POST',
      headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
    });
    return r.status;
  }
  const read = async (path: string) => Buffer.from(await sandbox.files.readBytes(path));

  it('when a large file is followed by an epilogue, by a second pair, or by no final CRLF, then every file is written whole and exact', async () => {
    const big = randomBytes(2 * 1024 * 1024 + 3);
    // An epilogue after the closing delimiter.
    expect(
      await upload(Buffer.concat([Buffer.from(meta('/early/epilogue.bin') + fileHead), big, Buffer.from(close + 'an epilogue')])),
    ).toBe(200);
    expect((await read('/early/epilogue.bin')).equals(big)).toBe(true);
    // No CRLF after the closing delimiter.
    expect(await upload(Buffer.concat([Buffer.from(meta('/early/short.bin') + fileHead), big, Buffer.from(close.trimEnd())]))).toBe(200);
    expect((await read('/early/short.bin')).equals(big)).toBe(true);
    // A second pair after the large file: the first is not the last part.
    const body = Buffer.concat([
      Buffer.from(meta('/early/one.bin') + fileHead),
      big,
      Buffer.from(`\r\n${meta('/early/two.txt')}${fileHead}second${close}`),
    ]);
    expect(await upload(body)).toBe(200);
    expect((await read('/early/one.bin')).equals(big)).toBe(true);
    expect(await sandbox.files.readFile('/early/two.txt')).toBe('second');
  });

  it('when a smaller file follows a larger one, then it reads back exactly: held memory is reused, and nothing of the first shows', async () => {
    const large = randomBytes(3 * 1024 * 1024 + 11);
    const small = Buffer.concat([Buffer.from('small:'), randomBytes(1024 * 1024 + 5)]);
    await sandbox.files.writeFiles([{ path: '/reuse/large.bin', data: large }]);
    await sandbox.files.writeFiles([{ path: '/reuse/small.bin', data: small }]);
    expect((await read('/reuse/small.bin')).equals(small)).toBe(true);
    expect((await read('/reuse/large.bin')).equals(large)).toBe(true);
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

    // The worker's listener, reached without the API: only the sandbox's own token opens it.
    const direct = `http://127.0.0.1:${stack.execdPort}/sandboxes/${sandbox.id}/execd/ping`;
    expect((await fetch(direct)).status).toBe(404);
    expect((await fetch(direct, { headers: { 'X-EXECD-ACCESS-TOKEN': 'x'.repeat(43) } })).status).toBe(404);
    expect((await fetch(direct, { headers: { 'X-EXECD-ACCESS-TOKEN': token } })).status).toBe(200);

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

  it('when another API pauses, resumes and deletes the sandbox, then the worker answers for its state before this API reads it again', async () => {
    // The second API shares the worker; this API keeps the Running view it read for 10 s.
    const other = await stack.startApiReplica('api-execd-2');
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    const id: string = created.body.id;
    const viaOther = (method: string, path: string) => stack.requestTo(other.baseUrl, method, `/v1/sandboxes/${id}${path}`);
    const stateViaOther = async () => (await viaOther('GET', '')).body.status?.state as string | undefined;
    try {
      const endpoint = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/44772`);
      const headers = { ...endpoint.body.headers, 'content-type': 'application/json' };
      const run = () =>
        fetch(`http://${endpoint.body.endpoint}/command`, { method: 'POST', headers, body: JSON.stringify({ command: 'echo hi' }) });
      expect((await run()).status).toBe(200);

      expect((await viaOther('POST', '/pause')).status).toBe(202);
      await waitFor('the sandbox to be paused', async () => (await stateViaOther()) === 'Paused');
      const paused = await run();
      expect(paused.status).toBe(409);
      // The worker's own refusal (this API would say "is Paused; resume it …"): it froze the container.
      expect(await paused.json()).toEqual({ code: 'SANDBOX::INVALID_STATE', message: `sandbox ${id} is paused` });

      expect((await viaOther('POST', '/resume')).status).toBe(202);
      await waitFor('the sandbox to be running', async () => (await stateViaOther()) === 'Running');
      const resumed = await run();
      expect(resumed.status).toBe(200);
      expect(await resumed.text()).toContain('hi');

      expect((await viaOther('DELETE', '')).status).toBe(204);
      await waitFor('the sandbox to be gone', async () => (await viaOther('GET', '')).status === 404);
      const gone = await run();
      expect(gone.status).toBe(404);
      expect(((await gone.json()) as { code: string }).code).toBe('SANDBOX::NOT_FOUND');
    } finally {
      await stack.request('DELETE', `/v1/sandboxes/${id}`);
      await other.process.stop();
    }
  });
});
