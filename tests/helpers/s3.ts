import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './stack';

// s3rver has no types; it is the bucket server FUSE mounts talk to in tests (127.0.0.1 only).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const AWSAccount = require('s3rver/lib/models/account');

/** A real S3 API on 127.0.0.1 backed by a temp directory, with extra credential pairs. */
export class LocalS3 {
  readonly directory = mkdtempSync(join(tmpdir(), 'tidebox-s3-'));
  port = 0;
  private server: { run(): Promise<unknown>; close(): Promise<unknown> } | undefined;

  static async start(buckets: string[], keyPairs: Array<[string, string]> = []): Promise<LocalS3> {
    const s3 = new LocalS3();
    s3.port = await freePort();
    for (const [id, secret] of keyPairs) AWSAccount.DUMMY_ACCOUNT.createKeyPair(id, secret);
    s3.server = new S3rver({
      port: s3.port,
      address: '127.0.0.1',
      directory: s3.directory,
      silent: true,
      configureBuckets: buckets.map((name) => ({ name })),
    });
    await s3.server!.run();
    return s3;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** An object's content as s3rver stored it, or undefined when absent. */
  object(bucket: string, key: string): string | undefined {
    const file = join(this.directory, bucket, `${key}._S3rver_object`);
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    rmSync(this.directory, { recursive: true, force: true });
  }
}

/** Mount points currently in /proc/mounts below `root`. */
export function mountsUnder(root: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((mountPoint) => mountPoint.startsWith(`${root}/`));
}

/** Stack config for ossfs tests: a payload key, and Debian's s3fs standing in for ossfs 1.0. */
export const ossfsStackConfig = (payloadKey: string, extra: Record<string, unknown> = {}) => ({
  security: { payloadKey },
  ossfs: { v1Binary: 's3fs' },
  ...extra,
});

/** Detach mounts a failed test left under `root`, so its data dir can be removed. */
export function detachMounts(root: string | undefined): void {
  for (const m of root ? mountsUnder(root) : []) execFileSync('umount', ['-l', m]);
}
