import { spawn, spawnSync } from 'node:child_process';
import { parseRange } from '../../execd/http/files';
import { execdLimits, HELD_CHUNK_BYTES, HeldBytes, heldFootprint, MemoryBudget } from '../../execd/http/limits';
import { startExecdServer } from '../../execd/http/server';
import { ExecdTokens } from '../../execd/tokens';
import type { Execd } from '../../execd';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { parseConfig } from '../../core/config';
import { applyEnv } from '../../core/load-config';
import { globToRegExp, LineSplitter, modeBits, modeDigits, parseStatLine, plainArgv } from '../../core/execd';
import { ExecChannel } from '../../execd/exec-channel';
import { SandboxSessions } from '../../execd/sessions';
import { ExecdSchema } from '../../core/execd-config';
import type { ProcessStarter } from '../../execd/process';
import { ByteLog, LogBudget, SandboxCommands } from '../../execd/commands';
import { FrameDemux } from '../../execd/docker-exec';

/** The pure pieces of Tidebox's execd: the line a warm exec evaluates (run by a real sh), globs, stat lines, ranges, framing. */

/** This process's children now (their pids). */
function listChildren(): number[] {
  const out = spawnSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

/** Processes on this machine, each in a session of its own (as a runtime starts an exec): the real shell behind the channel. */
const local: ProcessStarter = {
  canSetUser: false,
  canCloseStdin: true,
  async start(spec, onOutput) {
    const child = spawn(spec.argv[0]!, spec.argv.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => onOutput('stdout', d));
    child.stderr.on('data', (d: Buffer) => onOutput('stderr', d));
    child.stdin.on('error', () => undefined);
    const closed = new Promise<number>((resolve) =>
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15))),
    );
    return {
      write: (d) => void child.stdin.write(d),
      send: (d) => new Promise<void>((r) => child.stdin.write(d, () => r())),
      end: (d) => void (d === undefined ? child.stdin.end() : child.stdin.end(d)),
      pause: () => void child.stdout.pause(),
      resume: () => void child.stdout.resume(),
      closed: closed.then(() => undefined),
      exitCode: () => closed,
      destroy: () => child.kill('SIGKILL'),
    };
  },
};

describe('commands on a runner (a real sh here)', () => {
  let channel: ExecChannel;
  beforeAll(() => (channel = new ExecChannel(local, 1)));
  afterAll(() => channel.dispose());

  const run = async (command: string, opts: { cwd?: string; env?: Record<string, string> } = {}) => {
    const out = { stdout: '', stderr: '' };
    const started = await channel.run({ command, ...opts, onOutput: (stream, data) => void (out[stream] += data.toString()) });
    const code = await started.exited;
    return { ...out, code };
  };

  it.each([
    ['plain words', 'echo hi'],
    ['quotes of both kinds', `echo "it's" 'a "test"'`],
    ['newlines and a heredoc', 'cat <<EOF\nline one\nline two\nEOF'],
    ['shell syntax that must not leak out', "echo '$(id)' `echo x` ; echo \\\\"],
    ['no newline at the end of its output', 'printf "no end"; printf "err" >&2'],
  ])('when the command has %s, then it runs exactly as written, output cut exactly', async (_what, command) => {
    const expected = spawnSync('/bin/bash', ['-c', command], { encoding: 'utf8' });
    expect(await run(command)).toEqual({ stdout: expected.stdout, stderr: expected.stderr, code: 0 });
  });

  it('when cwd and env values hold quotes, newlines and $, then they arrive verbatim; stdin is empty', async () => {
    const env = { A: "x'y", B: 'one\ntwo', C: '$HOME `id` $(id)' };
    expect(await run('pwd; printf "%s|" "$A" "$B" "$C"; cat', { cwd: '/tmp', env })).toEqual({
      stdout: `/tmp\nx'y|one\ntwo|$HOME \`id\` $(id)|`,
      stderr: '',
      code: 0,
    });
  });

  it('when commands follow one another, then one runner serves them all and the exit codes are theirs', async () => {
    const pids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const r = await run(`echo $PPID; exit ${i}`);
      expect(r.code).toBe(i);
      pids.add(r.stdout.trim());
    }
    expect(pids.size).toBe(1); // the same runner shell was the parent every time
  });

  it('when a command leaves a process of its group behind, then the next command gets a fresh runner and none of its output', async () => {
    const first = await run('echo $PPID; (sleep 0.3; echo late) &');
    const second = await run('echo $PPID; sleep 0.6');
    expect(second.stdout).not.toContain('late');
    expect(second.stdout.trim()).not.toBe(first.stdout.split('\n')[0]);
  });

  it('when cwd does not exist, then the command does not run and the exit is non-zero', async () => {
    const r = await run('echo ran', { cwd: '/no/such' });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
  });

  it('when an image has no shell, then only plain words become argv', () => {
    expect(plainArgv('/hello --name=x a.txt')).toEqual(['/hello', '--name=x', 'a.txt']);
    expect(plainArgv('echo $HOME')).toBeUndefined();
    expect(plainArgv('a | b')).toBeUndefined();
    expect(plainArgv('   ')).toBeUndefined();
  });
});

describe('shells that wait in the sandbox', () => {
  /** The local starter, remembering the pid of each process it started (the last one is the newest). */
  const pids: number[] = [];
  const recording: ProcessStarter = {
    ...local,
    async start(spec, onOutput) {
      const before = new Set(listChildren());
      const p = await local.start(spec, onOutput);
      pids.push(...listChildren().filter((pid) => !before.has(pid)));
      return p;
    },
  };
  const until = async (what: string, ok: () => boolean) => {
    for (const end = Date.now() + 5_000; !ok(); await new Promise((r) => setTimeout(r, 10)))
      if (Date.now() > end) throw new Error(`${what} within 5 s`);
  };
  /** SIGKILL one process of ours (never a group: pid 0 or less would be one). */
  const killOne = (pid: number | undefined) => {
    if (!pid || pid <= 1) throw new Error(`not a process to kill: ${pid}`);
    process.kill(pid, 'SIGKILL');
  };
  const run = async (channel: ExecChannel, command: string) => {
    let stdout = '';
    const started = await channel.run({ command, onOutput: (stream, data) => void (stream === 'stdout' && (stdout += data.toString())) });
    const code = await started.exited;
    return { stdout, code };
  };

  it('when a primed channel is asked, then its first command runs on the shell started in advance', async () => {
    const channel = new ExecChannel(recording, 1);
    try {
      await channel.prime();
      expect(channel.warmCount).toBe(1);
      const warm = pids.at(-1)!;
      const first = await run(channel, 'echo $PPID');
      expect([first.stdout.trim(), first.code]).toEqual([String(warm), 0]);
    } finally {
      channel.dispose();
    }
  });

  it('when the engine refuses the first probe (a container frozen meanwhile), then it is asked again and commands run in a shell', async () => {
    let refuse = true;
    const frozenOnce: ProcessStarter = {
      ...local,
      async start(spec, onOutput) {
        if (refuse) {
          refuse = false;
          throw Object.assign(new Error('container is paused'), { statusCode: 409 });
        }
        return local.start(spec, onOutput);
      },
    };
    const channel = new ExecChannel(frozenOnce, 1);
    try {
      await expect(channel.prime()).rejects.toMatchObject({ statusCode: 409 });
      // Shell syntax: refused (400) had the refusal been taken for an image without a shell.
      expect(await run(channel, 'echo "$((1 + 1))"')).toEqual({ stdout: '2\n', code: 0 });
    } finally {
      channel.dispose();
    }
  });

  it('when a waiting shell or an idle runner is killed, then it is let go and the next command runs on a live one', async () => {
    const channel = new ExecChannel(recording, 1);
    try {
      await channel.prime();
      killOne(pids.at(-1));
      await until('the killed warm exec to be let go', () => channel.warmCount === 0);
      const first = await run(channel, 'echo $PPID');
      expect(first.code).toBe(0);
      expect(channel.idleCount).toBe(1);
      killOne(Number(first.stdout.trim()));
      await until('the killed idle runner to be let go', () => channel.idleCount === 0);
      const second = await run(channel, 'echo ok');
      expect([second.stdout, second.code]).toEqual(['ok\n', 0]);
    } finally {
      channel.dispose();
    }
  });
});

describe('per-sandbox caps', () => {
  const config = { ...ExecdSchema.parse({}), commandsPerSandbox: 2 };
  let channel: ExecChannel;
  beforeAll(() => (channel = new ExecChannel(local, 1)));
  afterAll(() => channel.dispose());

  it('when a sandbox already runs commandsPerSandbox commands, then the next is refused with 429 until one ends', async () => {
    const commands = new SandboxCommands(channel, config, new LogBudget(1024 * 1024));
    const a = await commands.start({ command: 'sleep 30', background: true });
    const b = await commands.start({ command: 'sleep 30', background: true });
    await expect(commands.start({ command: 'true', background: true })).rejects.toMatchObject({ status: 429 });
    await commands.interrupt(a.id);
    await a.done;
    const c = await commands.start({ command: 'true', background: true });
    expect((await c.done).exit_code).toBe(0);
    await commands.interrupt(b.id);
    await b.done;
  });

  it('when a sandbox already holds its most sessions, then another is refused with 429 until one is deleted', async () => {
    const sessions = new SandboxSessions(channel, 2);
    const first = await sessions.create();
    await sessions.create();
    await expect(sessions.create()).rejects.toMatchObject({ status: 429 });
    await sessions.delete(first);
    expect(await sessions.create()).toMatch(/^[0-9a-f-]{36}$/);
    sessions.closeAll();
  });

  it('when uploads ask to be held in memory, then each gets at most a quarter of the budget and all of them at most the whole', () => {
    const budget = new MemoryBudget(100);
    expect(budget.take(26)).toBe(false); // over a quarter: streamed or spooled instead
    expect([budget.take(25), budget.take(25), budget.take(25), budget.take(25)]).toEqual([true, true, true, true]);
    expect(budget.take(1)).toBe(false);
    budget.give(25);
    expect(budget.take(20)).toBe(true);
    expect(budget.inUse).toBe(95);
    expect(new MemoryBudget(0).take(1)).toBe(false); // uploadMemoryBytes = 0: never held
  });

  it("when held bytes span chunks and their chunks are reused, then each file reads back exactly what was appended, never an earlier request's bytes", () => {
    const budget = new MemoryBudget(16 * HELD_CHUNK_BYTES);
    const first = new HeldBytes(budget, 3 * HELD_CHUNK_BYTES);
    const a = Buffer.alloc(2 * HELD_CHUNK_BYTES + 7, 0x61);
    // Appended in pieces that straddle the chunk boundaries, as socket reads do.
    for (let at = 0; at < a.length; at += 65_531) first.append(a.subarray(at, at + 65_531));
    expect(Buffer.concat(first.range(0, a.length)).equals(a)).toBe(true);
    expect(first.range(HELD_CHUNK_BYTES - 3, 6).map((b) => b.length)).toEqual([3, 3]); // views, split at the boundary
    first.release();
    expect(budget.idle).toBe(3 * HELD_CHUNK_BYTES); // kept: within a quarter of the budget

    // The next request gets those chunks back; a smaller file shows none of the old bytes.
    const second = new HeldBytes(budget, HELD_CHUNK_BYTES + 10);
    const b = Buffer.from('second file');
    const c = Buffer.alloc(HELD_CHUNK_BYTES - 3, 0x63);
    second.append(b);
    second.append(c);
    expect(budget.idle).toBe(HELD_CHUNK_BYTES);
    expect(Buffer.concat(second.range(0, b.length)).equals(b)).toBe(true);
    expect(Buffer.concat(second.range(b.length, c.length)).equals(c)).toBe(true);
    expect(() => second.range(b.length, c.length + 1)).toThrow(RangeError); // past what was appended
    expect(() => second.append(Buffer.alloc(3))).toThrow(/more than the 1048586 bytes/); // past its Content-Length
  });

  it('when tiny uploads are held, then each takes its own size, not a whole chunk, and pins none of the pool', () => {
    const budget = new MemoryBudget(8 * HELD_CHUNK_BYTES);
    expect([heldFootprint(10), heldFootprint(HELD_CHUNK_BYTES), heldFootprint(HELD_CHUNK_BYTES + 1)]).toEqual([
      10,
      HELD_CHUNK_BYTES,
      2 * HELD_CHUNK_BYTES,
    ]);
    expect(budget.take(10)).toBe(true);
    expect(budget.take(HELD_CHUNK_BYTES + 1)).toBe(true);
    expect(budget.inUse).toBe(10 + 2 * HELD_CHUNK_BYTES);
    expect(budget.take(2 * HELD_CHUNK_BYTES + 1)).toBe(false); // three whole chunks: over a quarter
    budget.give(HELD_CHUNK_BYTES + 1);
    budget.give(10);
    expect(budget.inUse).toBe(0);

    const small = new HeldBytes(budget, 10);
    small.append(Buffer.from('0123'));
    small.append(Buffer.from('456789'));
    expect(Buffer.concat(small.range(2, 6)).toString()).toBe('234567');
    expect(() => small.append(Buffer.from('x'))).toThrow(/more than the 10 bytes/);
    small.release();
    expect(budget.idle).toBe(0); // its buffer is its own: never pooled
  });

  it('when many held chunks come back at once, then at most a quarter of the budget is kept idle', () => {
    const budget = new MemoryBudget(8 * HELD_CHUNK_BYTES);
    const held = new HeldBytes(budget, 8 * HELD_CHUNK_BYTES);
    held.append(Buffer.alloc(5 * HELD_CHUNK_BYTES));
    held.release();
    expect(budget.idle).toBe(2 * HELD_CHUNK_BYTES);
    expect(new MemoryBudget(0).idle).toBe(0);
  });

  it('when more connections reach the worker listener than it accepts, then the extra ones are closed and the rest still answer', async () => {
    const execd = { close: async () => undefined } as unknown as Execd;
    const tokens = ExecdTokens.open({ secret: 'unit-test-secret-0123456789', dataDir: tmpdir() });
    const limits = execdLimits({ server: { bodyLimitBytes: 1024 }, execd: ExecdSchema.parse({}) });
    const app = await startExecdServer({
      execd,
      tokens,
      limits,
      host: '127.0.0.1',
      port: 0,
      maxConnections: 16,
      log: { error: () => undefined },
    });
    const port = (app.server.address() as AddressInfo).port;
    const sockets: Socket[] = [];
    try {
      const open = () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect(port, '127.0.0.1', () => resolve(s));
          s.once('error', reject);
          sockets.push(s);
        });
      for (let i = 0; i < 16; i++) await open();
      const extra = await open();
      // The server closes a connection past its cap as soon as it is accepted.
      await new Promise((resolve) => extra.once('close', resolve));
      // An accepted one still gets an answer (here: no token → 404 as if the sandbox were missing).
      const answer = new Promise<string>((resolve) => sockets[0]!.once('data', (d: Buffer) => resolve(d.toString())));
      sockets[0]!.write('GET /sandboxes/x/execd/ping HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await answer).toMatch(/^HTTP\/1\.1 404/);
    } finally {
      for (const s of sockets) s.destroy();
      await app.close();
    }
  });
});

describe('globs (basename, doublestar syntax)', () => {
  it.each([
    ['*.txt', 'a.txt', true],
    ['*.txt', 'a.txt.bak', false],
    ['**', 'anything', true],
    ['?.py', 'a.py', true],
    ['?.py', 'ab.py', false],
    ['[ab]*.md', 'b-notes.md', true],
    ['[!ab]*.md', 'b-notes.md', false],
    ['*.{js,ts}', 'x.ts', true],
    ['*.{js,ts}', 'x.py', false],
    ['a\\*b', 'a*b', true],
    ['a.b', 'axb', false],
  ])('when %s is matched against %s, then %s', (pattern, name, matches) => {
    expect(globToRegExp(pattern).test(name)).toBe(matches);
  });

  it('when a brace is left open, then the pattern is refused', () => {
    expect(() => globToRegExp('*.{js')).toThrow(/unclosed/);
  });
});

describe('stat lines and modes', () => {
  it('when stat prints a line, then it becomes the contract FileInfo (a name with | kept whole)', () => {
    expect(parseStatLine('81a4|12|1000|UNKNOWN|0|root|1700000000|1700000100|/w/a|b.txt')).toEqual({
      path: '/w/a|b.txt',
      type: 'file',
      size: 12,
      modified_at: '2023-11-14T22:13:20.000Z',
      created_at: '2023-11-14T22:15:00.000Z',
      owner: '1000',
      group: 'root',
      mode: 644,
    });
    expect(parseStatLine('41ed|4096|0|root|0|root|0|0|/d')?.type).toBe('directory');
    expect(parseStatLine('a1ff|4|0|root|0|root|0|0|/l')).toMatchObject({ type: 'symlink', mode: 777 });
    expect(parseStatLine('garbage')).toBeUndefined();
  });

  it('when modes are converted, then 755 means rwxr-xr-x and non-octal digits are refused', () => {
    expect(modeBits(755)).toBe(0o755);
    expect(modeBits(4755)).toBe(0o4755);
    expect(modeBits(789)).toBeUndefined();
    expect(modeDigits(0o100640)).toBe(640);
  });
});

describe('output framing', () => {
  it('when output arrives in pieces, then lines are whole, endings dropped, blank lines "\\n", the tail at flush', () => {
    const s = new LineSplitter(8);
    expect(s.push(Buffer.from('one\r'))).toEqual([]);
    expect(s.push(Buffer.from('\ntwo\n\nthr'))).toEqual(['one', 'two', '\n']);
    expect(s.push(Buffer.from('ee-is-long'))).toEqual(['three-is']);
    expect(s.push(Buffer.from([0xe2, 0x82]))).toEqual([]);
    expect(s.push(Buffer.from([0xac]))).toEqual([]);
    expect(s.flush()).toEqual(['-long€']);
  });

  it('when the engine frames stdout and stderr, then they are told apart across chunk boundaries', () => {
    const got: Array<[string, string]> = [];
    const demux = new FrameDemux((stream, data) => got.push([stream, data.toString()]));
    const frame = (kind: number, text: string) =>
      Buffer.concat([Buffer.from([kind, 0, 0, 0]), Buffer.alloc(4), Buffer.from(text)]).fill(0, 4, 8);
    const a = frame(1, 'out');
    a.writeUInt32BE(3, 4);
    const b = frame(2, 'err!');
    b.writeUInt32BE(4, 4);
    const all = Buffer.concat([a, b]);
    demux.push(all.subarray(0, 5));
    demux.push(all.subarray(5, 13));
    demux.push(all.subarray(13));
    expect(got).toEqual([
      ['stdout', 'out'],
      ['stderr', 'err!'],
    ]);
  });

  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=95-200', 100, { start: 95, end: 99 }],
    ['bytes=100-', 100, undefined],
    ['bytes=5-1', 100, undefined],
    ['items=0-1', 100, undefined],
  ])('when the Range is %s of %d bytes, then it is %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('background logs', () => {
  it('when output passes the cap, then the oldest bytes go and cursors keep counting from the start', () => {
    const budget = new LogBudget(1024 * 1024);
    const log = new ByteLog(10, budget);
    log.append(Buffer.from('0123456789'));
    log.append(Buffer.from('abcde'));
    expect(log.read(0)).toEqual({ text: '56789abcde', next: 15 });
    expect(log.read(12)).toEqual({ text: 'cde', next: 15 });
    expect(log.read(99)).toEqual({ text: '', next: 15 });
    expect(budget.used).toBe(10);
    log.release();
    expect(budget.used).toBe(0);
  });

  it('when the process-wide budget is spent, then every log keeps only its newest 64 KiB', () => {
    const budget = new LogBudget(100 * 1024);
    const a = new ByteLog(1024 * 1024, budget);
    const b = new ByteLog(1024 * 1024, budget);
    a.append(Buffer.alloc(90 * 1024, 'a'));
    b.append(Buffer.alloc(20 * 1024, 'b'));
    expect(budget.used).toBe(110 * 1024);
    a.append(Buffer.from('!'));
    expect(a.read(0).text.length).toBe(64 * 1024);
    expect(a.read(0).text.endsWith('a!')).toBe(true);
    expect(a.read(0).next).toBe(90 * 1024 + 1);
    expect(budget.used).toBe(84 * 1024);
  });
});

describe('execd settings', () => {
  it('when TIDEBOX_EXECD_ENABLED and TIDEBOX_EXECD_TOKEN_SECRET are set, then they switch execd and give its key; a short key is refused', () => {
    const config = (env: Record<string, string>) => parseConfig(applyEnv({}, env));
    expect(config({}).execd).toMatchObject({ enabled: true, commandsPerSandbox: 16 });
    expect(config({ TIDEBOX_EXECD_ENABLED: 'false' }).execd.enabled).toBe(false);
    expect(config({ TIDEBOX_EXECD_TOKEN_SECRET: 'k'.repeat(64) }).execd.tokenSecret).toBe('k'.repeat(64));
    expect(() => config({ TIDEBOX_EXECD_TOKEN_SECRET: 'short' })).toThrow(/execd\.tokenSecret/);
  });
});
