import { parseCreateBody } from '../helpers/create-body';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asyncLocalStorage, Context, type Info } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { parseConfig } from '../../core/config';
import { TideboxError } from '../../core/errors';
import {
  endpointUrl,
  ossfs2Endpoint,
  ossfsCredentialProblems,
  ossfsEndpointProblem,
  ossfsOptionProblem,
  ossfsPrefixProblem,
  OssfsSource,
  ossfsSourceProblems,
} from '../../core/mounts';
import { normalizeCreateRequest } from '../../core/create-request';
import { createSandboxRequestSchema } from '../../core/schemas';
import { createFaults } from '../../activities/faults';
import {
  createMountActivities,
  mountAt,
  prepareMountRoot,
  readableWithin,
  sweepMountSecrets,
} from '../../activities/ossfs/mount-activities';

const source = (overrides: Partial<OssfsSource> = {}): OssfsSource => ({
  bucket: 'my-bucket',
  endpoint: 'http://127.0.0.1:9000',
  version: '1.0',
  prefix: 'pre',
  options: ['use_path_request_style'],
  accessKeyId: 'AKID',
  accessKeySecret: 'secret-value',
  ...overrides,
});

describe('ossfs option allowlist', () => {
  it.each([
    ['1.0', 'use_path_request_style'],
    ['1.0', 'ro'],
    ['1.0', 'allow_other'],
    ['1.0', 'umask=022'],
    ['1.0', 'umask=0027'],
    ['1.0', 'uid=1000'],
    ['1.0', 'gid=0'],
    ['1.0', 'parallel_count=8'],
    ['1.0', 'multipart_size=64'],
    ['1.0', 'stat_cache_expire=60'],
    ['1.0', 'dbglevel=warn'],
    ['1.0', 'sigv4'],
    ['2.0', 'allow_other'],
    ['2.0', 'allow_other=true'],
    ['2.0', 'ro'],
    ['2.0', 'attr_timeout=60'],
    ['2.0', 'readdirplus=false'],
    ['2.0', 'oss_region=cn-hangzhou'],
    ['2.0', 'upload_buffer_size=8388608'],
  ] as const)('when ossfs %s is given %s, then it is allowed', (version, option) => {
    expect(ossfsOptionProblem(option, version)).toBeUndefined();
  });

  it.each([
    ['1.0', 'use_cache=/', 'is not allowed'],
    ['1.0', 'passwd_file=/etc/shadow', 'is not allowed'],
    ['1.0', 'logfile=/etc/cron.d/x', 'is not allowed'],
    ['1.0', 'url=http://evil.example', 'is not allowed'],
    ['1.0', 'tmpdir=/root', 'is not allowed'],
    ['1.0', 'no_such_option', 'is not allowed'],
    ['1.0', 'ro,use_cache=/', 'commas'],
    ['1.0', 'umask=022,allow_other', 'commas'],
    ['1.0', 'dbglevel=info,passwd_file=/x', 'commas'],
    ['1.0', '-o allow_other', 'must not start with "-"'],
    ['1.0', '-oallow_other', 'must not start with "-"'],
    ['1.0', 'ro\nallow_other', 'control characters'],
    ['1.0', 'ro x', 'whitespace'],
    ['1.0', 'url=x;rm -rf /', 'whitespace'],
    ['1.0', 'RO', 'name[=value]'],
    ['1.0', '=1', 'name[=value]'],
    ['1.0', '', 'name[=value]'],
    ['1.0', 'ro=1', 'takes no value'],
    ['1.0', 'umask=999', 'octal'],
    ['1.0', 'umask=', 'octal'],
    ['1.0', 'uid=root', 'whole number'],
    ['1.0', 'uid=-1', 'whole number'],
    ['1.0', 'parallel_count=100000', 'whole number from 1 to 64'],
    ['1.0', 'dbglevel=debug', 'must be one of'],
    ['1.0', 'attr_timeout=60', 'is not allowed for ossfs 1.0'],
    ['1.0', '__proto__', 'name[=value]'],
    ['1.0', 'hasownproperty', 'is not allowed'],
    ['1.0', 'constructor', 'is not allowed'],
    ['2.0', 'credential_process=/bin/sh', 'is not allowed for ossfs 2.0'],
    ['2.0', 'log_dir=/etc', 'is not allowed'],
    ['2.0', 'oss_endpoint=evil.example', 'is not allowed'],
    ['2.0', 'oss_access_key_secret=x', 'is not allowed'],
    ['2.0', 'f', 'is not allowed'],
    ['2.0', 'use_path_request_style', 'is not allowed for ossfs 2.0'],
    ['2.0', 'readdirplus=yes', 'must be one of true, false'],
    ['2.0', 'allow_other=1', 'true or false'],
    ['2.0', 'oss_region=../x', 'region id'],
  ] as const)('when ossfs %s is given %j, then it is refused (%s)', (version, option, message) => {
    expect(ossfsOptionProblem(option, version)).toContain(message);
  });
});

describe('ossfs endpoints', () => {
  it.each([
    ['oss-cn-hangzhou.aliyuncs.com', 'https://oss-cn-hangzhou.aliyuncs.com', 'oss-cn-hangzhou.aliyuncs.com'],
    ['127.0.0.1:9000', 'https://127.0.0.1:9000', '127.0.0.1:9000'],
    ['http://127.0.0.1:9000', 'http://127.0.0.1:9000', 'http://127.0.0.1:9000'],
    ['http://127.0.0.1:9000/', 'http://127.0.0.1:9000', 'http://127.0.0.1:9000'],
    ['HTTPS://OSS.Example.COM', 'https://oss.example.com', 'https://oss.example.com'],
    ['Http://oss.example.com:80', 'http://oss.example.com', 'http://oss.example.com'],
    ['http://[::1]:9000', 'http://[::1]:9000', 'http://[::1]:9000'],
  ])('when the endpoint is %s, then ossfs 1.0 gets url=%s and ossfs 2.0 gets %s', (endpoint, url, v2) => {
    expect(ossfsEndpointProblem(endpoint)).toBeUndefined();
    expect(endpointUrl(endpoint)).toBe(url);
    expect(ossfs2Endpoint(endpoint)).toBe(v2);
  });

  it.each([
    ['http://x.example.com\n--credential_process=sh', 'control characters'],
    ['http://x.example.com\r', 'control characters'],
    ['http://x.exa\tmple.com', 'control characters'],
    ['oss.example.com\u0000', 'control characters'],
    [' http://oss.example.com', 'whitespace'],
    ['http://a,allow_other', 'DNS name or IP'],
    ['http://a_b.example.com', 'DNS name or IP'],
    ['ftp://127.0.0.1', 'http or https'],
    ['http://u:p@127.0.0.1', 'must not carry credentials'],
    ['http://127.0.0.1/path', 'path or query'],
    ['http://127.0.0.1/?a=1', 'path or query'],
    ['127.0.0.1:70000', 'invalid port'],
    ['', 'required'],
    ['a'.repeat(254), 'at most 253'],
  ])('when the endpoint is %j, then it is refused (%s)', (endpoint, message) => {
    expect(ossfsEndpointProblem(endpoint)).toContain(message);
    expect(() => endpointUrl(endpoint)).toThrow();
  });
});

describe('ossfs prefixes and credentials', () => {
  it('when the prefix is empty or plain segments, then it is fine; control characters, absolute paths and dot segments are refused', () => {
    for (const ok of ['', 'pre', 'a/b/c', 'with space', 'ünïcode']) expect(ossfsPrefixProblem(ok)).toBeUndefined();
    expect(ossfsPrefixProblem('pre\n--oss_bucket=other')).toContain('control characters');
    expect(ossfsPrefixProblem('pre\u007f')).toContain('control characters');
    for (const bad of ['/abs', 'a/', 'a//b', '../x', 'a/./b', '.']) expect(ossfsPrefixProblem(bad)).toContain('segments');
  });

  it('when a key holds a control character or the id a ":", then it is refused, without repeating the value', () => {
    expect(ossfsCredentialProblems('AKID', 'secret', '1.0')).toEqual([]);
    expect(ossfsCredentialProblems('AKID', 'se:cret', '2.0')).toEqual([]);
    const problems = [
      ...ossfsCredentialProblems('AK\nID', 'secret', '2.0'),
      ...ossfsCredentialProblems('AK:ID', 'secret', '2.0'),
      ...ossfsCredentialProblems('AKID', 'sec\nret', '2.0'),
      ...ossfsCredentialProblems('AKID', 'sec\u0000ret', '2.0'),
      ...ossfsCredentialProblems('AKID', 'se:cret', '1.0'),
      ...ossfsCredentialProblems('', '', '1.0'),
    ];
    expect(problems).toEqual([
      'accessKeyId must not contain control characters or ":"',
      'accessKeyId must not contain control characters or ":"',
      'accessKeySecret must not contain control characters',
      'accessKeySecret must not contain control characters',
      'accessKeySecret must not contain ":" with ossfs 1.0',
      'accessKeyId is required',
      'accessKeySecret is required',
    ]);
    for (const p of problems) expect(p).not.toMatch(/AK.ID|sec.ret|se:cret/);
  });

  it('when a whole source is checked, then every bad field is reported, and a good one has no problem', () => {
    expect(ossfsSourceProblems(source())).toEqual([]);
    expect(
      ossfsSourceProblems(
        source({ version: '2.0', endpoint: 'oss-cn-hangzhou.aliyuncs.com', options: ['allow_other', 'attr_timeout=60'] }),
      ),
    ).toEqual([]);
    const problems = ossfsSourceProblems(
      source({
        bucket: 'Bad_Bucket',
        endpoint: 'http://x\n--credential_process=sh',
        prefix: 'a\nb',
        options: ['use_cache=/'],
        accessKeyId: 'a:b',
        accessKeySecret: 's\n',
      }),
    );
    expect(problems).toHaveLength(6);
    expect(problems.join('\n')).toMatch(/bucket.*\n.*endpoint.*\n.*subPath.*\n.*use_cache.*\n.*accessKeyId.*\n.*accessKeySecret/);
    expect(ossfsSourceProblems(source({ version: '3.0' as never }))).toEqual(['version must be "1.0" or "2.0"']);
    expect(ossfsSourceProblems(source({ options: Array(33).fill('ro') }))).toEqual(['at most 32 options']);
    expect(ossfsSourceProblems(undefined as never)).toEqual(['the mount source is missing']);
  });
});

describe('ossfs volumes at the API (request normalisation)', () => {
  const limits = parseConfig({}).sandbox;
  const schema = createSandboxRequestSchema(limits);
  const rejection = (ossfs: Record<string, unknown>, volume: Record<string, unknown> = {}): TideboxError => {
    const body = {
      image: { uri: 'busybox' },
      entrypoint: ['sh'],
      timeout: 600,
      volumes: [
        {
          name: 'v',
          mountPath: '/v',
          subPath: 'pre',
          ...volume,
          ossfs: { bucket: 'bkt', endpoint: 'oss.example.com', accessKeyId: 'a', accessKeySecret: 's', version: '1.0', ...ossfs },
        },
      ],
    };
    try {
      normalizeCreateRequest(parseCreateBody(schema, body), limits, { tenant: 'acme', mountKeyOf: () => '0'.repeat(32) });
    } catch (err) {
      return err as TideboxError;
    }
    throw new Error('expected a rejection');
  };

  it.each([
    [{ options: ['use_cache=/'] }, {}, 'option "use_cache" is not allowed'],
    [{ options: ['passwd_file=/etc/shadow'] }, {}, 'option "passwd_file" is not allowed'],
    [{ options: ['ro,allow_other'] }, {}, 'commas'],
    [{ options: ['frobnicate'] }, {}, 'not allowed'],
    [{ version: '2.0', options: ['credential_process=/bin/sh'] }, {}, 'not allowed for ossfs 2.0'],
    [{ endpoint: 'http://x.example.com\n--credential_process=sh' }, {}, 'control characters'],
    [{}, { subPath: 'pre\nx' }, 'control characters'],
  ])('when a volume has %j %j, then create is refused as invalid', (ossfs, volume, message) => {
    const err = rejection(ossfs, volume);
    expect(err).toBeInstanceOf(TideboxError);
    expect(err.code).toBe('SANDBOX::INVALID_PARAMETER');
    expect(err.message).toContain(message);
  });
});

describe('mount host helpers', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tidebox-unit-mounts-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('when /proc/mounts escapes a mount point, then mountAt still finds it', async () => {
    const procMounts = join(dir, 'mounts');
    writeFileSync(procMounts, 'proc /proc proc rw 0 0\ns3fs /srv/with\\040space fuse.s3fs rw 0 0\n');
    expect(await mountAt('/srv/with space', procMounts)).toBe('fuse.s3fs');
    expect(await mountAt('/srv/with', procMounts)).toBeUndefined();
  });

  it('when listing hangs (a hung FUSE mount), then the probe gives up in time and the listing process is killed', async () => {
    const fakeLs = join(dir, 'ls');
    const pidFile = join(dir, 'pid');
    writeFileSync(fakeLs, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 30\n`, { mode: 0o755 });
    const started = Date.now();
    expect(await readableWithin(dir, 300, fakeLs)).toBe('no answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(3000);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await new Promise((r) => setTimeout(r, 100));
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('when the directory is listable, then the probe says so; when it is not, then it says why', async () => {
    expect(await readableWithin(dir, 5000)).toBe(true);
    expect(await readableWithin(join(dir, 'absent'), 5000)).toMatch(/No such file/);
  });

  it('when a mount root goes through a symlink, then it is created and resolved to its real path', async () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    expect(await prepareMountRoot(join(dir, 'link', 'mounts'))).toBe(join(dir, 'real', 'mounts'));
    expect(existsSync(join(dir, 'real', 'mounts'))).toBe(true);
  });

  it('when credential directories are left over, then the sweep removes those of dead workers, legacy and stale ones, and keeps live ones', async () => {
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    const make = (name: string) => {
      mkdirSync(join(dir, name), { mode: 0o700 });
      writeFileSync(join(dir, name, 'credentials'), 'id:secret\n', { mode: 0o600 });
      return name;
    };
    make(`tidebox-mount-${dead.pid}-abc123`);
    make('tidebox-mount-Xy12Zq');
    make(`tidebox-mount-${process.pid}-live01`);
    const stale = make(`tidebox-mount-${process.pid}-stale1`);
    const old = new Date(Date.now() - 3600_000);
    utimesSync(join(dir, stale), old, old);
    make('unrelated-dir');
    symlinkSync(join(dir, 'unrelated-dir'), join(dir, 'tidebox-mount-link'));

    const removed = await sweepMountSecrets(dir);
    expect(removed.map((p) => p.slice(dir.length + 1)).sort()).toEqual(
      [`tidebox-mount-${dead.pid}-abc123`, 'tidebox-mount-Xy12Zq', stale].sort(),
    );
    expect(readdirSync(dir).sort()).toEqual([`tidebox-mount-${process.pid}-live01`, 'tidebox-mount-link', 'unrelated-dir'].sort());
  });
});

/**
 * The activities themselves, in a hand-made activity Context (no server): fake ossfs/fusermount
 * binaries record how they were called. Mount-dependent cases make a real tmpfs mount and need root.
 */
describe('mount activities', () => {
  let dir: string;
  let calls: string;
  const beats: unknown[] = [];
  const KEY = 'ab'.repeat(16);
  const canMount =
    process.getuid?.() === 0 &&
    (() => {
      const probe = mkdtempSync(join(tmpdir(), 'tidebox-unit-canmount-'));
      try {
        execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', probe], { stdio: 'ignore' });
        execFileSync('umount', [probe], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      } finally {
        rmSync(probe, { recursive: true, force: true });
      }
    })();
  const itMounting = canMount ? it : it.skip;

  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\necho "${name} $*" >> ${calls}\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  const activities = (ossfs: Record<string, unknown> = {}) =>
    createMountActivities({
      config: parseConfig({
        dataDir: dir,
        ossfs: {
          v1Binary: script('ossfs', 'mount -t tmpfs tmpfs "$2"'),
          v2Binary: script('ossfs2', 'exit 0'),
          fusermountBinary: script('fusermount', 'for last; do :; done; case "$1" in -uz) umount -l "$last";; *) umount "$last";; esac'),
          umountBinary: script('umount', 'exit 1'),
          mountTimeoutSeconds: 5,
          ...ossfs,
        },
      }),
      faults: createFaults({ dataDir: dir, faults: { hangAt: [], failAt: [] } }),
    });

  /** Run `fn` as attempt `attempt` of an activity. */
  const inActivity = <T>(fn: () => Promise<T>, attempt = 1, controller = new AbortController()): Promise<T> => {
    const cancelled = new Promise<never>((_, reject) =>
      controller.signal.addEventListener('abort', () => reject(new Error('activity cancelled'))),
    );
    cancelled.catch(() => undefined);
    const noop = () => undefined;
    const logger = { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: noop };
    const context = new Context(
      { attempt, activityId: '1', activityType: 'test', heartbeatTimeoutMs: 20_000 } as unknown as Info,
      cancelled,
      controller.signal,
      (details?: unknown) => beats.push(details),
      undefined,
      logger,
      {} as never,
      {} as never,
    );
    return asyncLocalStorage.run(context, fn);
  };
  const failureOf = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
    try {
      await p;
    } catch (err) {
      return err as ApplicationFailure;
    }
    throw new Error('expected a failure');
  };
  const recorded = () => (existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : []);
  const mountsBelow = (root: string) =>
    readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${root}/`));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tidebox-unit-activities-'));
    calls = join(dir, 'calls.txt');
    beats.length = 0;
  });
  afterEach(async () => {
    // Activities create their mount root as they are made: let that finish before removing the directory.
    await new Promise((r) => setTimeout(r, 100));
    for (const m of mountsBelow(dir)) execFileSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['a forbidden option', { options: ['use_cache=/'] }, 'option "use_cache" is not allowed'],
    ['an option carrying another', { options: ['ro,passwd_file=/etc/shadow'] }, 'commas'],
    ['a newline in the endpoint', { endpoint: 'http://x.example.com\n--credential_process=sh' }, 'control characters'],
    ['a newline in the prefix', { prefix: 'pre\n--oss_bucket=other' }, 'control characters'],
    ['a newline in the key id', { accessKeyId: 'AK\nID' }, 'accessKeyId must not contain'],
    ['a ":" in the key id', { accessKeyId: 'AK:ID' }, 'accessKeyId must not contain'],
    [
      'a newline in the secret',
      { accessKeySecret: 'x\n--credential_process=sh', version: '2.0' as const },
      'accessKeySecret must not contain',
    ],
  ])('when the source has %s, then mountBucket refuses it (non-retryable) and runs nothing', async (_what, overrides, message) => {
    const failure = await failureOf(inActivity(() => activities().mountBucket({ key: KEY, source: source(overrides) })));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe('SANDBOX::MOUNT_FAILED');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('refusing to mount');
    expect(failure.message).toContain(message);
    expect(failure.message).not.toContain('x\n--credential_process');
    expect(recorded()).toEqual([]);
    expect(existsSync(join(dir, 'mounts', KEY))).toBe(false);
  });

  it('when the key is not a mount key, then both activities refuse it before touching a path', async () => {
    const a = activities();
    for (const key of ['../../etc', 'ABCDEF0123456789ABCDEF0123456789', '']) {
      expect((await failureOf(inActivity(() => a.mountBucket({ key, source: source() })))).message).toContain('not a mount key');
      expect((await failureOf(inActivity(() => a.unmountBucket({ key })))).message).toContain('not a mount key');
    }
    expect(recorded()).toEqual([]);
  });

  it('when the mount command hangs, then it is killed after mountTimeoutSeconds, the failure says so and the credentials are gone', async () => {
    const a = activities({ v2Binary: script('ossfs2-hangs', 'exec sleep 60'), mountTimeoutSeconds: 1 });
    const started = Date.now();
    const failure = await failureOf(inActivity(() => a.mountBucket({ key: KEY, source: source({ version: '2.0', options: [] }) })));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(failure.message).toContain('timed out after 1 s');
    expect(failure.nonRetryable).toBe(true);
    const configFile = recorded()[0]!.split(' ').pop()!;
    expect(configFile).toMatch(new RegExp(`/tidebox-mount-${process.pid}-[^/]+/credentials$`));
    expect(existsSync(configFile)).toBe(false);
    expect(beats.length).toBeGreaterThan(0);
  });

  it('when two attempts mount the same path at once, then they run one after the other', async () => {
    const a = activities({
      v2Binary: script('ossfs2-slow', `echo start >> ${join(dir, 'order')}; sleep 0.5; echo end >> ${join(dir, 'order')}; exit 3`),
    });
    const attempt = () => failureOf(inActivity(() => a.mountBucket({ key: KEY, source: source({ version: '2.0', options: [] }) })));
    const [x, y] = await Promise.all([attempt(), attempt()]);
    expect([x.message, y.message]).toEqual([expect.stringContaining('exit 3'), expect.stringContaining('exit 3')]);
    expect(readFileSync(join(dir, 'order'), 'utf8').trim().split('\n')).toEqual(['start', 'end', 'start', 'end']);
  });

  it('when an attempt is cancelled, then its mount command is killed, and an attempt waiting for the path gives up its turn without running', async () => {
    const a = activities({ v2Binary: script('ossfs2-hangs', 'exec sleep 60'), mountTimeoutSeconds: 60 });
    const running = new AbortController();
    const waiting = new AbortController();
    const mount = (controller: AbortController) =>
      failureOf(inActivity(() => a.mountBucket({ key: KEY, source: source({ version: '2.0', options: [] }) }), 1, controller));
    const first = mount(running);
    const second = mount(waiting);
    await new Promise((r) => setTimeout(r, 300));
    waiting.abort();
    expect((await second).message).toBe('activity cancelled');
    const started = Date.now();
    running.abort();
    expect((await first).message).toContain('was cancelled');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(recorded()).toHaveLength(1);
  });

  itMounting(
    'when a bucket is mounted, then a second mount adopts it; the first unmount attempt uses fusermount -u, a retry detaches lazily',
    async () => {
      const a = activities();
      const first = await inActivity(() => a.mountBucket({ key: KEY, source: source() }));
      const root = join(dir, 'mounts');
      expect(first).toEqual({ hostPath: join(root, KEY), adopted: false });
      expect(mountsBelow(dir)).toEqual([join(root, KEY)]);
      const [call] = recorded();
      expect(call).toMatch(
        new RegExp(
          `^ossfs my-bucket:/pre ${root}/${KEY} -o url=http://127.0.0.1:9000 -o passwd_file=/.+/credentials -o use_path_request_style$`,
        ),
      );
      expect(await inActivity(() => a.mountBucket({ key: KEY, source: source() }))).toEqual({ hostPath: join(root, KEY), adopted: true });
      expect(recorded()).toHaveLength(1);

      expect(await inActivity(() => a.unmountBucket({ key: KEY }))).toEqual({ unmounted: true });
      expect(recorded()[1]).toBe(`fusermount -u ${root}/${KEY}`);
      expect(mountsBelow(dir)).toEqual([]);
      expect(existsSync(join(root, KEY))).toBe(false);

      await inActivity(() => a.mountBucket({ key: KEY, source: source() }));
      expect(await inActivity(() => a.unmountBucket({ key: KEY }), 2)).toEqual({ unmounted: true });
      expect(recorded()[3]).toBe(`fusermount -uz ${root}/${KEY}`);
      expect(await inActivity(() => a.unmountBucket({ key: KEY }), 3)).toEqual({ unmounted: false });
    },
  );

  itMounting('when a mount command times out but its daemon mounted anyway, then the orphan is detached before the failure', async () => {
    const a = activities({ v1Binary: script('ossfs-orphans', 'mount -t tmpfs tmpfs "$2"; exec sleep 60'), mountTimeoutSeconds: 1 });
    const failure = await failureOf(inActivity(() => a.mountBucket({ key: KEY, source: source() })));
    expect(failure.message).toContain('timed out');
    expect(mountsBelow(dir)).toEqual([]);
    expect(recorded()).toContain(`fusermount -uz ${join(dir, 'mounts', KEY)}`);
  });
});
