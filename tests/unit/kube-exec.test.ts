import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { DEFAULT_EXECD_CONFIG } from '../helpers/execd';
import { LogBudget, SandboxCommands } from '../../execd/commands';
import { ExecChannel } from '../../execd/exec-channel';
import { EXEC_PROTOCOLS, execUrl, parseExecStatus, PodProcesses } from '../../execd/kube-exec';
import { metricsFromCgroup } from '../../execd/kube-backend';
import { PodFiles } from '../../execd/pod-files';
import { SandboxSessions } from '../../execd/sessions';
import { ShellFiles } from '../../execd/shell-files';

/**
 * Tidebox's execd on Kubernetes, against the pod exec channel protocol. The test control plane has
 * no kubelet, so the frames come from two places: Status payloads as API servers send them, and a
 * local exec endpoint speaking v5 or v4 that runs each command as a real process on this machine
 * (its own session, as a container runtime starts an exec) and frames its stdio: the same warm
 * execs, commands, signals and sessions as on Docker, over the channel protocol.
 */

describe('the exec Status (channel 3)', () => {
  it.each([
    ['Success', { metadata: {}, status: 'Success' }, 0],
    [
      'NonZeroExitCode',
      {
        metadata: {},
        status: 'Failure',
        message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      },
      3,
    ],
  ])('when the API server sends %s, then the exit code is read from it', (_what, status, code) => {
    expect(parseExecStatus(Buffer.from(JSON.stringify(status)))).toBe(code);
  });

  it('when the command could not start, then the failure says why', () => {
    const status = {
      metadata: {},
      status: 'Failure',
      message: 'failed to exec in container: exec: "bash": executable file not found in $PATH',
      reason: 'InternalError',
    };
    expect(() => parseExecStatus(Buffer.from(JSON.stringify(status)))).toThrow('executable file not found');
    expect(() => parseExecStatus(Buffer.from('not json'))).toThrow(/not JSON/);
  });

  it('when a URL is built, then every argv word is its own command parameter and the streams are named', () => {
    const url = new URL(
      execUrl('https://k8s.example:6443/', { namespace: 'team-a', pod: 'sandbox-x', container: 'sandbox' }, ['sh', '-c', 'echo a&b'], true),
    );
    expect(url.protocol).toBe('wss:');
    expect(url.pathname).toBe('/api/v1/namespaces/team-a/pods/sandbox-x/exec');
    expect(url.searchParams.getAll('command')).toEqual(['sh', '-c', 'echo a&b']);
    expect(Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'command'))).toEqual({
      container: 'sandbox',
      stdin: 'true',
      stdout: 'true',
      stderr: 'true',
      tty: 'false',
    });
  });
});

describe('metrics from the cgroup', () => {
  it('when a pod has limits, then they and the use sampled over a second are the metrics', () => {
    const out = [
      'cpu.max 50000 100000',
      'memory.max 134217728',
      'memory.current 41943040',
      'inactive_file 8388608',
      'nproc 8',
      'memtotal 16000000',
      'usage0 1000000',
      'usage1 1250000',
    ].join('\n');
    expect(metricsFromCgroup(out, 42)).toEqual({ cpu_count: 0.5, cpu_used_pct: 50, mem_total_mib: 128, mem_used_mib: 32, timestamp: 42 });
  });

  it('when a pod has no limits, then the node is the limit', () => {
    const out = [
      'cpu.max max 100000',
      'memory.max max',
      'memory.current 1048576',
      'inactive_file',
      'nproc 4',
      'memtotal 2048',
      'usage0 0',
      'usage1 0',
    ].join('\n');
    expect(metricsFromCgroup(out, 1)).toMatchObject({ cpu_count: 4, cpu_used_pct: 0, mem_total_mib: 2, mem_used_mib: 1 });
  });
});

/** An exec endpoint that runs commands here and frames their stdio as the channel protocol says. */
function execEndpoint(protocol: 'v5' | 'v4'): Promise<{ server: Server; url: string; requests: string[] }> {
  const requests: string[] = [];
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => (protocol === 'v5' && offered.has(EXEC_PROTOCOLS[0]!) ? EXEC_PROTOCOLS[0]! : EXEC_PROTOCOLS[1]!),
  });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '', 'http://local');
    requests.push(url.pathname);
    if (url.pathname !== '/api/v1/namespaces/ns/pods/sandbox-1/exec') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{"kind":"Status","message":"pods \\"nope\\" not found"}');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const argv = url.searchParams.getAll('command');
      const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      const frame = (channel: number, data: Buffer) => ws.send(Buffer.concat([Buffer.from([channel]), data]));
      child.stdout.on('data', (d: Buffer) => frame(1, d));
      child.stderr.on('data', (d: Buffer) => frame(2, d));
      child.stdin.on('error', () => undefined);
      ws.on('message', (m: Buffer) => {
        if (m[0] === 0) child.stdin.write(m.subarray(1));
        if (m[0] === 255 && m[1] === 0) child.stdin.end();
      });
      ws.on('close', () => child.stdin.end());
      child.on('error', (err) => {
        frame(3, Buffer.from(JSON.stringify({ status: 'Failure', reason: 'InternalError', message: err.message })));
        ws.close();
      });
      child.on('close', (code, signal) => {
        const exit = code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
        const status =
          exit === 0
            ? { status: 'Success' }
            : { status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(exit) }] } };
        frame(3, Buffer.from(JSON.stringify(status)));
        ws.close();
      });
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests })),
  );
}

describe.each(['v5', 'v4'] as const)('commands over the pod exec channel protocol (%s)', (protocol) => {
  let endpoint: Awaited<ReturnType<typeof execEndpoint>>;
  let channel: ExecChannel;
  let processes: PodProcesses;
  beforeAll(async () => {
    endpoint = await execEndpoint(protocol);
    const kube = { getCurrentCluster: () => ({ server: endpoint.url }), applyToHTTPSOptions: async () => undefined };
    processes = new PodProcesses(kube, { namespace: 'ns', pod: 'sandbox-1', container: 'sandbox' });
    channel = new ExecChannel(processes, 1);
  });
  afterAll(() => {
    channel.dispose();
    endpoint.server.closeAllConnections();
    endpoint.server.close();
  });

  const collect = async (command: string, opts: { cwd?: string; env?: Record<string, string> } = {}) => {
    const out = { stdout: '', stderr: '' };
    const run = await channel.run({ command, ...opts, onOutput: (stream, data) => void (out[stream] += data.toString()) });
    const code = await run.exited;
    return { ...out, code };
  };

  it('when commands run, then stdout, stderr and the exit code come back through their channels', async () => {
    expect(await collect('echo hi; echo oops >&2; exit 3')).toEqual({ stdout: 'hi\n', stderr: 'oops\n', code: 3 });
    expect(await collect('pwd; echo "$V"; cat', { cwd: '/tmp', env: { V: "it's\nhere" } })).toEqual({
      stdout: "/tmp\nit's\nhere\n",
      stderr: '',
      code: 0,
    });
  });

  it('when a command is interrupted, then its whole process group ends', async () => {
    const commands = new SandboxCommands(channel, DEFAULT_EXECD_CONFIG, new LogBudget(DEFAULT_EXECD_CONFIG.logBytesTotal));
    const { id, done } = await commands.start({ command: 'sleep 30 & sleep 30', background: true });
    const asked = Date.now();
    await commands.interrupt(id);
    expect(await done).toMatchObject({ running: false, exit_code: -1, error: 'signal: terminated' });
    expect(Date.now() - asked).toBeLessThan(1_000);
  });

  it('when a session runs twice, then the shell state carries over', async () => {
    const sessions = new SandboxSessions(channel, 4);
    const id = await sessions.create();
    let out = '';
    const onOutput = (_s: string, d: Buffer) => void (out += d.toString());
    expect(await sessions.get(id).run({ command: 'X=7; cd /tmp', onOutput })).toBe(0);
    expect(await sessions.get(id).run({ command: 'echo "$X $PWD"', onOutput })).toBe(0);
    expect(out).toBe('7 /tmp\n');
    await sessions.delete(id);
  });

  it('when a uid is asked for, then it is refused: the pod exec has no user', async () => {
    await expect(channel.run({ command: 'id', user: '1000', onOutput: () => undefined })).rejects.toMatchObject({ status: 400 });
  });

  it('when a file is written and read as tar over exec, then the bytes, mode and replacements hold', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidebox-podfiles-'));
    try {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const files = new PodFiles(processes, new ShellFiles(channel, 100));
      const target = join(dir, 'in/deeper/blob.bin');
      await files.upload(target, { size: data.length, open: () => Readable.from([data]) }, { mode: 640 });
      expect(readFileSync(target).equals(data)).toBe(true);
      expect(statSync(target).mode & 0o777).toBe(0o640);
      const back = await files.download(target);
      const chunks: Buffer[] = [];
      for await (const c of back.body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      expect(back.size).toBe(data.length);
      expect(await files.info(target)).toMatchObject({ path: target, type: 'file', size: data.length, mode: 640 });

      writeFileSync(join(dir, 'note.txt'), 'a-b-a');
      expect(await files.replace({ [join(dir, 'note.txt')]: { old: 'a', new: 'xy' } })).toEqual({
        [join(dir, 'note.txt')]: { replacedCount: 2 },
      });
      expect(readFileSync(join(dir, 'note.txt'), 'utf8')).toBe('xy-b-xy');
      await expect(files.download(join(dir, 'missing'))).rejects.toMatchObject({ status: 404 });
      await expect(files.download(dir)).rejects.toMatchObject({ status: 400 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('when the pod does not exist, then the exec is a 404', async () => {
    const kube = { getCurrentCluster: () => ({ server: endpoint.url }), applyToHTTPSOptions: async () => undefined };
    const missing = new PodProcesses(kube, { namespace: 'ns', pod: 'nope', container: 'sandbox' });
    await expect(missing.start({ argv: ['true'], stdin: false }, () => undefined)).rejects.toMatchObject({ status: 404 });
  });
});
