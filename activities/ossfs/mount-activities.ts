import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Config } from '../../core/config';
import { ErrorCodes } from '../../core/errors';
import { endpointUrl, OssfsSource } from '../../core/mounts';
import type { Faults } from '../faults';

/** `/proc/mounts` escapes space, tab, newline and backslash as octal. */
const unescapeMountField = (field: string) => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The FUSE mount at `path`, if any (its fstype, e.g. fuse.s3fs / fuse.ossfs). */
export async function mountAt(path: string, procMounts = '/proc/mounts'): Promise<string | undefined> {
  const text = await readFile(procMounts, 'utf8');
  for (const line of text.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (mountPoint && unescapeMountField(mountPoint) === path) return fsType;
  }
  return undefined;
}

function run(binary: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    // Argument vector, never a shell: bucket names, options and paths cannot be interpreted.
    execFile(binary, args, { timeout: timeoutMs, windowsHide: true }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}${err && code === -1 ? err.message : ''}`.trim() });
    });
  });
}

const sleep = (ms: number) => Context.current().sleep(ms);

/** true when the directory can be listed within `ms`, else the error (a hung FUSE read counts as one). */
async function readableWithin(path: string, ms: number): Promise<true | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no answer within ${ms} ms`), ms)));
  try {
    return await Promise.race([readdir(path).then(() => true as const, (err: Error) => err.message), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Mounting and unmounting buckets on this host (task queue `<queue>-host-<hostId>`). Idempotent: an
 * existing mount at the key's path is adopted; unmounting what is not mounted succeeds. Credentials
 * go to a 0600 file in a private 0700 directory that is removed as soon as the mount command returns.
 */
export function createMountActivities(deps: { config: Config; faults: Faults }) {
  const { ossfs } = deps.config;
  const mountRoot = ossfs.mountRoot ?? resolve(deps.config.dataDir, 'mounts');

  return {
    mountBucket: async (input: { key: string; source: OssfsSource }): Promise<{ hostPath: string; adopted: boolean }> => {
      const hostPath = join(mountRoot, input.key);
      await mkdir(hostPath, { recursive: true, mode: 0o755 });
      if (await mountAt(hostPath)) return { hostPath, adopted: true };

      const { source } = input;
      const secretsDir = await mkdtemp(join(tmpdir(), 'tidebox-mount-'));
      let result: { code: number; output: string };
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
            '-o', `url=${endpointUrl(source.endpoint)}`,
            '-o', `passwd_file=${credentials}`,
            ...source.options.flatMap((o) => ['-o', o]),
          ];
        } else {
          const lines = [
            `--oss_endpoint=${source.endpoint}`,
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
        result = await run(binary, args, ossfs.mountTimeoutSeconds * 1000);
      } finally {
        await rm(secretsDir, { recursive: true, force: true });
      }
      const scrub = (text: string) => text.split(source.accessKeySecret).join('***');
      if (result.code !== 0) {
        throw ApplicationFailure.create({
          type: ErrorCodes.MOUNT_FAILED.code,
          message: `mounting bucket ${source.bucket} from ${source.endpoint} failed (exit ${result.code}): ${scrub(result.output).slice(-400)}`,
          nonRetryable: true,
        });
      }
      // The mount command may daemonise before the kernel shows the mount: wait for it.
      const deadline = Date.now() + ossfs.mountTimeoutSeconds * 1000;
      while (!(await mountAt(hostPath))) {
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: ErrorCodes.MOUNT_FAILED.code,
            message: `bucket ${source.bucket} did not appear at ${hostPath} within ${ossfs.mountTimeoutSeconds} s`,
            nonRetryable: true,
          });
        }
        Context.current().heartbeat('waiting for the mount');
        await sleep(100);
      }
      // Some FUSE clients (s3fs 1.90) daemonise and mount before they reach the bucket, then die:
      // the mount point exists but every access fails. Read it once before anyone relies on it.
      const probe = await readableWithin(hostPath, 10_000);
      if (probe !== true) {
        throw ApplicationFailure.create({
          type: ErrorCodes.MOUNT_FAILED.code,
          message: `mounting bucket ${source.bucket} from ${source.endpoint} failed: the mount is not readable (${scrub(probe)})`,
          nonRetryable: true,
        });
      }
      await deps.faults.reached('bucket-mounted', input.key);
      return { hostPath, adopted: false };
    },

    unmountBucket: async (input: { key: string }): Promise<{ unmounted: boolean }> => {
      const hostPath = join(mountRoot, input.key);
      if (!(await mountAt(hostPath))) {
        await rmdir(hostPath).catch(() => undefined);
        return { unmounted: false };
      }
      await deps.faults.reached('bucket-unmounting', input.key);
      for (let attempt = 0; await mountAt(hostPath); attempt++) {
        Context.current().heartbeat('unmounting');
        // fusermount first (the FUSE way); plain umount if that fails (e.g. not the mounting user).
        const fuse = await run(ossfs.fusermountBinary, ['-u', hostPath], 30_000);
        if (fuse.code !== 0) {
          // A FUSE daemon that died leaves a mount only umount (lazily, as a last resort) removes.
          await run(ossfs.umountBinary, attempt < 2 ? [hostPath] : ['-l', hostPath], 30_000);
        }
        if (await mountAt(hostPath)) await sleep(Math.min(5000, 200 * 2 ** attempt));
      }
      await rmdir(hostPath).catch(() => undefined);
      return { unmounted: true };
    },
  };
}

export type MountActivities = ReturnType<typeof createMountActivities>;
