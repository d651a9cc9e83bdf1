import { spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Config } from '../../core/config';
import { ErrorCodes } from '../../core/errors';
import { endpointUrl, isMountKey, ossfs2Endpoint, ossfsSourceProblems } from '../../core/mounts';
import type { BucketMountHost } from '../../contracts/runtime';
import { heartbeating } from '../common';
import type { Faults } from '../faults';

/** `/proc/mounts` escapes space, tab, newline and backslash as octal. */
const unescapeMountField = (field: string) => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/**
 * The mount at `path`, if any (its fstype, e.g. fuse.s3fs / fuse.ossfs). Reads /proc/mounts only,
 * so it never touches the mount itself: safe on a hung FUSE mount.
 */
export async function mountAt(path: string, procMounts = '/proc/mounts'): Promise<string | undefined> {
  const text = await readFile(procMounts, 'utf8');
  for (const line of text.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (mountPoint && unescapeMountField(mountPoint) === path) return fsType;
  }
  return undefined;
}

interface RunResult {
  code: number;
  output: string;
  /** The command did not end within its time (or was cancelled) and was SIGKILLed. */
  timedOut: boolean;
}

/**
 * Run a command (an argument vector, never a shell: bucket names, options and paths cannot be
 * interpreted) for at most `timeoutMs`, then SIGKILL it. Resolves once the command has exited,
 * even when a daemon it forked keeps its output pipes; never rejects.
 */
export function run(
  binary: string,
  args: string[],
  timeoutMs: number,
  opts: { keepStdout?: boolean; signal?: AbortSignal } = {},
): Promise<RunResult> {
  return new Promise((resolveRun) => {
    let output = '';
    let timedOut = false;
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const child = spawn(binary, args, { stdio: ['ignore', opts.keepStdout === false ? 'ignore' : 'pipe', 'pipe'], windowsHide: true });
    const finish = (code: number, note = '') => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolveRun({ code: timedOut ? -1 : code, timedOut, output: `${output}${note}`.trim() });
    };
    const collect = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-8192));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('error', (err) => finish(-1, `\n${err.message}`));
    child.on('close', (code) => finish(code ?? -1));
    // A daemonising command can leave its pipes to the daemon: its own exit is enough, after a moment for the last output.
    child.on('exit', (code) => timers.push(setTimeout(() => finish(code ?? -1), 1000)));
    const onAbort = () => kill('cancelled');
    const kill = (why: string) => {
      if (done || timedOut) return;
      timedOut = true;
      output += `\n${why}`;
      child.kill('SIGKILL');
      // A process stuck in the kernel may outlive SIGKILL for a while: do not wait for it forever.
      timers.push(setTimeout(() => finish(-1, ' (and it did not exit on SIGKILL)'), 5000));
    };
    timers.push(setTimeout(() => kill(`timed out after ${timeoutMs} ms`), timeoutMs));
    // A cancelled activity (e.g. timed out by the server) does not keep its command, nor the path's lock.
    if (opts.signal?.aborted) kill('cancelled');
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * true when the directory can be listed within `ms`, else why not (a hung FUSE read counts). The
 * listing runs in a child process: a hung FUSE mount blocks that process, which is SIGKILLed after
 * `ms` — never one of this process's libuv threads, which would stay blocked for good.
 */
export async function readableWithin(path: string, ms: number, ls = 'ls'): Promise<true | string> {
  const result = await run(ls, ['-A', '--', path], ms, { keepStdout: false });
  if (result.code === 0) return true;
  if (result.timedOut) return `no answer within ${ms} ms`;
  return result.output || `ls exited with ${result.code}`;
}

const PROBE_MS = 10_000;
/** A mount command may take up to mountTimeoutSeconds and an unmount command 30 s: beat all along. */
const HEARTBEAT_MS = 5_000;
/** How long a credentials directory may exist before a sweep takes it for a leftover even if its owner lives (> any mount command). */
const SECRETS_MAX_AGE_MS = 15 * 60_000;
const SECRETS_PREFIX = 'tidebox-mount-';

const sleep = (ms: number) => Context.current().sleep(ms);

/** One promise chain per host path: mounting and unmounting one path never overlap in this process. */
const pathLocks = new Map<string, Promise<void>>();

export async function exclusive<T>(
  path: string,
  fn: () => Promise<T>,
  cancelled: Promise<unknown> = Context.current().cancelled,
): Promise<T> {
  const previous = pathLocks.get(path) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = previous.then(() => mine);
  pathLocks.set(path, tail);
  try {
    // An attempt cancelled while waiting (e.g. timed out) gives up its turn without running.
    await Promise.race([previous, cancelled]);
    return await fn();
  } finally {
    release();
    if (pathLocks.get(path) === tail) pathLocks.delete(path);
  }
}

/** Where shared mounts live, as configured (may go through symlinks). */
export const mountRootOf = (config: Config): string => config.ossfs.mountRoot ?? resolve(config.dataDir, 'mounts');

/**
 * Create the mount root (0755) and resolve it to its real path: /proc/mounts shows real paths, so
 * a root reached through a symlink (e.g. /tmp on some systems) would otherwise never match.
 */
export async function prepareMountRoot(path: string): Promise<string> {
  await mkdir(path, { recursive: true, mode: 0o755 });
  return realpath(path);
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Remove credential directories a crashed worker left in `dir` (between mkdtemp and rm). A
 * directory is named after the worker that made it (`tidebox-mount-<pid>-…`): it is kept while that
 * process lives, unless older than any mount command could take. Only this user's directories
 * (never symlinks) are removed. Returns what was removed.
 */
export async function sweepMountSecrets(dir = tmpdir(), now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(SECRETS_PREFIX)) continue;
    const path = join(dir, name);
    const stat = await lstat(path).catch(() => undefined);
    if (!stat || !stat.isDirectory()) continue;
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) continue;
    const owner = /^tidebox-mount-(\d+)-/.exec(name)?.[1];
    const stale = now - stat.mtimeMs > SECRETS_MAX_AGE_MS;
    if (owner !== undefined && processAlive(Number(owner)) && !stale) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

const refused = (message: string) => ApplicationFailure.create({ type: ErrorCodes.MOUNT_FAILED.code, message, nonRetryable: true });

/**
 * Mounting and unmounting buckets on this host (task queue `<queue>-host-<hostId>`). Idempotent: a
 * readable mount at the key's path is adopted; unmounting what is not mounted succeeds. Credentials
 * go to a 0600 file in a private 0700 directory that is removed as soon as the mount command returns.
 * The source is validated again here, whatever the API checked: nothing runs for a bad one.
 */
export function createMountActivities(deps: { config: Config; faults: Faults }): BucketMountHost {
  const { ossfs } = deps.config;
  const configuredRoot = mountRootOf(deps.config);
  // Resolved once, starting now (worker start); a failure is retried by the next activity.
  let rootReady: Promise<string> | undefined;
  const mountRoot = (): Promise<string> =>
    (rootReady ??= prepareMountRoot(configuredRoot).catch((err: unknown) => {
      rootReady = undefined;
      throw err;
    }));
  mountRoot().catch(() => undefined);

  const pathOf = async (key: unknown): Promise<string> => {
    if (!isMountKey(key)) throw refused(`refusing mount key ${JSON.stringify(key)}: not a mount key`);
    return join(await mountRoot(), key);
  };

  /** A command of this activity: killed when it overruns, or when the activity is cancelled. */
  const command = (binary: string, args: string[], timeoutMs: number) =>
    run(binary, args, timeoutMs, { signal: Context.current().cancellationSignal });

  /** Detach lazily: the mount leaves the namespace now, its daemon ends once nothing uses it. */
  const detach = async (hostPath: string): Promise<string> => {
    const fuse = await command(ossfs.fusermountBinary, ['-uz', hostPath], 30_000);
    if (!(await mountAt(hostPath))) return fuse.output;
    const plain = await command(ossfs.umountBinary, ['-l', hostPath], 30_000);
    return `${fuse.output}\n${plain.output}`.trim();
  };

  return {
    mountBucket: (input) =>
      heartbeating(async () => {
        const { source } = input;
        const problems = ossfsSourceProblems(source);
        if (problems.length > 0) throw refused(`refusing to mount: ${problems.join('; ')}`);
        const hostPath = await pathOf(input.key);
        return exclusive(hostPath, async () => {
          // Look in /proc/mounts before touching the path: a stat or mkdir on a hung mount would block.
          if (await mountAt(hostPath)) {
            const probe = await readableWithin(hostPath, PROBE_MS);
            if (probe === true) return { hostPath, adopted: true };
            // A dead or hung mount (e.g. its daemon was killed): replace it rather than hand it out.
            for (let round = 0; round < 3 && (await mountAt(hostPath)); round++) await detach(hostPath);
            if (await mountAt(hostPath)) {
              throw ApplicationFailure.retryable(
                `an unreadable mount at ${hostPath} could not be removed (${probe})`,
                'UNMOUNT_INCOMPLETE',
              );
            }
          }
          await mkdir(hostPath, { recursive: true, mode: 0o755 });

          const secretsDir = await mkdtemp(join(tmpdir(), `${SECRETS_PREFIX}${process.pid}-`));
          let result: RunResult;
          try {
            const credentials = join(secretsDir, 'credentials');
            let binary: string;
            let args: string[];
            if (source.version === '1.0') {
              await writeFile(credentials, `${source.accessKeyId}:${source.accessKeySecret}\n`, { mode: 0o600 });
              binary = ossfs.v1Binary;
              args = [
                source.prefix ? `${source.bucket}:/${source.prefix}` : source.bucket,
                hostPath,
                '-o',
                `url=${endpointUrl(source.endpoint)}`,
                '-o',
                `passwd_file=${credentials}`,
                ...source.options.flatMap((o) => ['-o', o]),
              ];
            } else {
              const lines = [
                `--oss_endpoint=${ossfs2Endpoint(source.endpoint)}`,
                `--oss_bucket=${source.bucket}`,
                ...(source.prefix ? [`--oss_bucket_prefix=${source.prefix}/`] : []),
                `--oss_access_key_id=${source.accessKeyId}`,
                `--oss_access_key_secret=${source.accessKeySecret}`,
                ...source.options.map((o) => `--${o}`),
              ];
              await writeFile(credentials, `${lines.join('\n')}\n`, { mode: 0o600 });
              binary = ossfs.v2Binary;
              args = ['mount', hostPath, '-c', credentials];
            }
            result = await command(binary, args, ossfs.mountTimeoutSeconds * 1000);
          } finally {
            await rm(secretsDir, { recursive: true, force: true });
          }
          const scrub = (text: string) => text.split(source.accessKeySecret).join('***');
          if (result.timedOut) {
            // The command was killed, but a daemon it forked may have mounted (or mount later): take down what is there.
            if (await mountAt(hostPath)) await detach(hostPath);
            const stopped = Context.current().cancellationSignal.aborted
              ? 'was cancelled'
              : `timed out after ${ossfs.mountTimeoutSeconds} s`;
            throw refused(`mounting bucket ${source.bucket} from ${source.endpoint} ${stopped}: ${scrub(result.output).slice(-400)}`);
          }
          if (result.code !== 0) {
            throw refused(
              `mounting bucket ${source.bucket} from ${source.endpoint} failed (exit ${result.code}): ${scrub(result.output).slice(-400)}`,
            );
          }
          // The mount command may daemonise before the kernel shows the mount: wait for it.
          const deadline = Date.now() + ossfs.mountTimeoutSeconds * 1000;
          while (!(await mountAt(hostPath))) {
            if (Date.now() > deadline) {
              throw refused(`bucket ${source.bucket} did not appear at ${hostPath} within ${ossfs.mountTimeoutSeconds} s`);
            }
            await sleep(100);
          }
          // Some FUSE clients (s3fs 1.90) daemonise and mount before they reach the bucket, then die:
          // the mount point exists but every access fails. Read it once before anyone relies on it.
          const probe = await readableWithin(hostPath, PROBE_MS);
          if (probe !== true) {
            throw refused(`mounting bucket ${source.bucket} from ${source.endpoint} failed: the mount is not readable (${scrub(probe)})`);
          }
          await deps.faults.reached('bucket-mounted', input.key);
          return { hostPath, adopted: false };
        });
      }, HEARTBEAT_MS),

    /**
     * Take the mount at the key's path down. The first attempt asks nicely (fusermount -u, then
     * umount); a retried attempt (the first failed, timed out, or its worker died) detaches lazily
     * (fusermount -uz, then umount -l), which a busy or dead mount cannot refuse.
     */
    unmountBucket: (input) =>
      heartbeating(async () => {
        const hostPath = await pathOf(input.key);
        return exclusive(hostPath, async () => {
          if (!(await mountAt(hostPath))) {
            await rmdir(hostPath).catch(() => undefined);
            return { unmounted: false };
          }
          await deps.faults.reached('bucket-unmounting', input.key);
          const { attempt } = Context.current().info;
          let output = '';
          for (let round = 0; round < 3 && (await mountAt(hostPath)); round++) {
            if (round > 0) await sleep(200 * 2 ** round);
            if (attempt <= 1) {
              // fusermount first (the FUSE way); plain umount if that fails (e.g. a daemon that died).
              const fuse = await command(ossfs.fusermountBinary, ['-u', hostPath], 30_000);
              output = fuse.output;
              if (fuse.code !== 0 && (await mountAt(hostPath)))
                output = `${output}\n${(await command(ossfs.umountBinary, [hostPath], 30_000)).output}`;
            } else {
              output = await detach(hostPath);
            }
          }
          if (await mountAt(hostPath)) {
            // Retried by the workflow (without limit): the next attempt detaches lazily.
            throw ApplicationFailure.retryable(
              `${hostPath} is still mounted after unmount attempt ${attempt}: ${output.trim().slice(-400)}`,
              'UNMOUNT_INCOMPLETE',
            );
          }
          await rmdir(hostPath).catch(() => undefined);
          return { unmounted: true };
        });
      }, HEARTBEAT_MS),
  };
}
