import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { mountWorkflowId } from '../../core/mounts';
import { payloadCodecsFor } from '../../platform/payload-codec';
import { detachMounts, LocalS3, mountsUnder, ossfsStackConfig } from '../helpers/s3';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * OSSFS volumes on real FUSE mounts: Debian's s3fs stands in for ossfs 1.0 (same command line
 * family) against s3rver on 127.0.0.1. Mount actors keep the holder sets; the payload codec keeps
 * credentials out of workflow history.
 */
const BUCKET = 'tidebox-bkt';
const KEY_ID = 'TBKEYID7781';
const SECRET = 'tb-secret-6d1f0c99a';
const PAYLOAD_KEY = randomBytes(32).toString('base64');
// Stands in for ossfs2 (not packaged for Debian): records its argument vector and config file, then fails.
const recordDir = mkdtempSync(join(tmpdir(), 'tidebox-ossfs2-'));
const recorder = join(recordDir, 'ossfs2');
writeFileSync(
  recorder,
  `#!/bin/sh\n{ printf 'arg:%s\\n' "$@"; stat -c 'mode:%a' "$4"; cat "$4"; } > ${recordDir}/record.txt\necho "ossfs2: cannot reach the bucket" >&2\nexit 3\n`,
  { mode: 0o755 },
);
let s3: LocalS3;
let stack: Stack;
let mountRoot: string;

beforeAll(async () => {
  s3 = await LocalS3.start([BUCKET], [[KEY_ID, SECRET]]);
  stack = await Stack.start({
    config: ossfsStackConfig(PAYLOAD_KEY, { ossfs: { v1Binary: 's3fs', v2Binary: recorder } }),
  });
  mountRoot = join(stack.dataDir, 'mounts');
});
afterAll(async () => {
  detachMounts(mountRoot); // only a failed test leaves mounts behind
  await stack?.destroy();
  await s3?.stop();
  rmSync(recordDir, { recursive: true, force: true });
});

const volume = (overrides: Record<string, unknown> = {}, ossfs: Record<string, unknown> = {}) => ({
  name: 'data',
  mountPath: '/data',
  subPath: 'pre',
  ossfs: {
    bucket: BUCKET,
    endpoint: s3.endpoint,
    version: '1.0',
    options: ['use_path_request_style'],
    accessKeyId: KEY_ID,
    accessKeySecret: SECRET,
    ...ossfs,
  },
  ...overrides,
});
const mounts = async () =>
  (await stack.request('GET', '/v1/mounts')).body.items as Array<{ key: string; holders: string[]; state: string; hostPath?: string }>;
const exec = (sandboxId: string, script: string) => stack.exec(sandboxId, script);

describe('ossfs volumes', () => {
  it('when a sandbox writes through its mount, then the object appears in the bucket, and a readOnly volume of the same mount refuses writes', async () => {
    const created = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({
        entrypoint: ['sh', '-c', 'echo hello-bucket > /data/from-sandbox.txt; exec tail -f /dev/null'],
        volumes: [volume(), volume({ name: 'ro', mountPath: '/ro', readOnly: true })],
      }),
    );
    expect(created.body.status).toMatchObject({ state: 'Running' });
    const id: string = created.body.id;
    // The create answers once the container runs, maybe before its entrypoint wrote (and s3fs may
    // upload the new file empty first): wait for the content, then check it.
    await waitFor('the object in the bucket', () => s3.object(BUCKET, 'pre/from-sandbox.txt') === 'hello-bucket\n', 15_000);
    expect(s3.object(BUCKET, 'pre/from-sandbox.txt')).toBe('hello-bucket\n');

    // Same source twice → one mount, held once.
    const [mount, ...others] = await mounts();
    expect(others).toHaveLength(0);
    expect(mount).toMatchObject({ holders: [id], state: 'Mounted' });
    expect(mountsUnder(mountRoot)).toEqual([mount!.hostPath]);

    const write = await exec(id, 'touch /ro/denied');
    expect(write.code).not.toBe(0);
    expect(write.output).toMatch(/Read-only file system/);
    expect((await exec(id, 'cat /ro/from-sandbox.txt')).output).toBe('hello-bucket\n');

    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    await waitFor('unmounted', () => mountsUnder(mountRoot).length === 0, 20_000);
    await waitFor('the mount actor gone', async () => (await mounts()).length === 0, 20_000);
  });

  it('when two sandboxes share a mount, then deleting one keeps it for the other and deleting the second unmounts it', async () => {
    const a = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }));
    const b = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume({ mountPath: '/shared' })] }));
    expect([a.body.status.state, b.body.status.state]).toEqual(['Running', 'Running']);
    const [mount, ...others] = await mounts();
    expect(others).toHaveLength(0);
    expect(mount!.holders).toEqual([a.body.id, b.body.id].sort());

    await stack.request('DELETE', `/v1/sandboxes/${a.body.id}`);
    expect(await mounts()).toEqual([expect.objectContaining({ key: mount!.key, holders: [b.body.id], state: 'Mounted' })]);
    expect(mountsUnder(mountRoot)).toHaveLength(1);
    const read = await exec(b.body.id, 'echo via-b > /shared/b.txt && cat /shared/b.txt');
    expect(read).toEqual({ code: 0, output: 'via-b\n' });

    await stack.request('DELETE', `/v1/sandboxes/${b.body.id}`);
    await waitFor('unmounted', () => mountsUnder(mountRoot).length === 0, 20_000);
    await waitFor('the mount actor gone', async () => (await mounts()).length === 0, 20_000);
  });

  it('when an operator terminates a mount actor while its bucket is mounted, then the sweep detaches the mount; deleting the sandbox still works', async () => {
    const a = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }));
    expect(a.body.status.state).toBe('Running');
    const [mount] = await mounts();
    expect(mountsUnder(mountRoot)).toHaveLength(1);
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      await new Client({ connection, namespace: stack.namespace }).workflow
        .getHandle(mountWorkflowId('local', mount!.key))
        .terminate('an operator ended the actor by hand');
    } finally {
      await connection.close();
    }
    await waitFor('the sweep to detach the unclaimed mount', () => mountsUnder(mountRoot).length === 0, 20_000, 250);
    // The sweep says so once the unmount returned: a moment after the mount is gone from the table.
    await waitFor(
      'the sweep to log the detach',
      () => readFileSync(join(stack.dataDir, 'worker.log'), 'utf8').includes('detached a bucket mount no mount actor holds'),
      5_000,
      50,
    );
    expect((await stack.request('DELETE', `/v1/sandboxes/${a.body.id}`)).status).toBe(204);
    expect(await stack.containers(a.body.id)).toHaveLength(0);
    expect(mountsUnder(mountRoot)).toHaveLength(0);
  });

  it('when the same bucket is asked for with different credentials, then there are two mounts', async () => {
    const a = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }));
    const b = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ volumes: [volume({}, { accessKeyId: 'S3RVER', accessKeySecret: 'S3RVER' })] }),
    );
    expect([a.body.status.state, b.body.status.state]).toEqual(['Running', 'Running']);
    const all = await mounts();
    expect(all).toHaveLength(2);
    expect(
      all
        .map((m) => m.holders)
        .flat()
        .sort(),
    ).toEqual([a.body.id, b.body.id].sort());
    expect(mountsUnder(mountRoot)).toHaveLength(2);
    await stack.request('DELETE', `/v1/sandboxes/${a.body.id}`);
    await stack.request('DELETE', `/v1/sandboxes/${b.body.id}`);
    await waitFor('unmounted', () => mountsUnder(mountRoot).length === 0, 20_000);
  });

  it('when the mount fails (nothing listens at the endpoint), then the create fails with the reason and nothing is left', async () => {
    const created = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ volumes: [volume({}, { endpoint: 'http://127.0.0.1:1' })] }),
    );
    expect(created.status).toBe(202);
    expect(created.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::MOUNT_FAILED' });
    expect(created.body.status.message).toContain(`mounting bucket ${BUCKET}`);
    expect(created.body.status.message).not.toContain(SECRET);
    expect(await stack.containers(created.body.id)).toHaveLength(0);
    // The create answers as soon as the attempt failed; the actor then removes what the dead FUSE
    // client left behind, and completes.
    await waitFor('the broken mount removed', () => mountsUnder(mountRoot).length === 0, 30_000);
    await waitFor('the failed mount actor gone', async () => (await mounts()).length === 0, 20_000);
    await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`);
  });

  it('when a volume asks for ossfs 2.0, then ossfs2 mount runs with a 0600 config file holding the settings, removed afterwards; its failure fails the create', async () => {
    const created = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({
        volumes: [volume({}, { version: '2.0', endpoint: 'oss-cn-hangzhou.aliyuncs.com', options: ['allow_other', 'attr_timeout=60'] })],
      }),
    );
    expect(created.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::MOUNT_FAILED' });
    expect(created.body.status.message).toContain('ossfs2: cannot reach the bucket');
    const lines = readFileSync(join(recordDir, 'record.txt'), 'utf8').trim().split('\n');
    const config = lines[5]!.startsWith('--') ? lines.slice(5) : lines.slice(6);
    expect(lines.slice(0, 4)).toEqual([
      'arg:mount',
      expect.stringMatching(new RegExp(`^arg:${mountRoot}/[0-9a-f]{32}$`)),
      'arg:-c',
      expect.stringMatching(/^arg:\/.+\/credentials$/),
    ]);
    expect(lines[4]).toBe('mode:600');
    expect(config).toEqual([
      '--oss_endpoint=oss-cn-hangzhou.aliyuncs.com',
      `--oss_bucket=${BUCKET}`,
      '--oss_bucket_prefix=pre/',
      `--oss_access_key_id=${KEY_ID}`,
      `--oss_access_key_secret=${SECRET}`,
      '--allow_other',
      '--attr_timeout=60',
    ]);
    expect(existsSync(lines[3]!.slice(4))).toBe(false);
    expect(created.body.status.message).not.toContain(SECRET);
    await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`);
    await waitFor('the failed mount actor gone', async () => (await mounts()).length === 0, 20_000);
  });

  it.each([
    ['an option with a leading "-"', {}, { options: ['-o allow_other'] }, 'must not start with "-"'],
    [
      'an option with shell metacharacters',
      {},
      { options: ['url=x;rm -rf /'] },
      'must not contain commas, whitespace or control characters',
    ],
    ['a path-valued option (use_cache=/)', {}, { options: ['use_cache=/'] }, 'option "use_cache" is not allowed for ossfs 1.0'],
    ['another password file', {}, { options: ['passwd_file=/etc/shadow'] }, 'option "passwd_file" is not allowed'],
    ['two options in one (a comma)', {}, { options: ['use_path_request_style,allow_other'] }, 'must not contain commas'],
    ['an option not on the allowlist', {}, { options: ['frobnicate=1'] }, 'option "frobnicate" is not allowed'],
    ['an option of the other version', {}, { options: ['attr_timeout=60'] }, 'option "attr_timeout" is not allowed for ossfs 1.0'],
    [
      'an ossfs 2.0 option that runs a command',
      {},
      { version: '2.0', endpoint: 'oss-cn-hangzhou.aliyuncs.com', options: ['credential_process=/bin/sh'] },
      'not allowed for ossfs 2.0',
    ],
    ['a newline in the endpoint', {}, { endpoint: 'http://127.0.0.1:1\n--credential_process=sh' }, 'control characters'],
    ['a control character in the subPath', { subPath: 'pre\n--oss_bucket=other' }, {}, 'control characters'],
    [
      'a credential carrying a config line',
      {},
      { version: '2.0', endpoint: 'oss-cn-hangzhou.aliyuncs.com', options: [], accessKeySecret: 'k\n--credential_process=/bin/sh' },
      'accessKeySecret must not contain control characters',
    ],
    ['an endpoint with another scheme', {}, { endpoint: 'ftp://127.0.0.1' }, 'http or https'],
    ['an endpoint with credentials', {}, { endpoint: 'http://u:p@127.0.0.1' }, 'must not carry credentials'],
    ['a missing secret', {}, { accessKeySecret: '' }, 'accessKeySecret is required'],
    ['a subPath leaving the bucket', { subPath: '../other' }, {}, 'subPath'],
    ['an absolute subPath', { subPath: '/abs' }, {}, 'subPath'],
    ['a relative mountPath', { mountPath: 'data' }, {}, 'absolute'],
    ['a bad name', { name: 'Bad_Name' }, {}, 'DNS label'],
  ])('when a volume has %s, then create answers 400 and nothing is made', async (_what, overrides, ossfs, message) => {
    const before = (await mounts()).length;
    const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume(overrides, ossfs)] }));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('SANDBOX::INVALID_PARAMETER');
    expect(r.body.message).toContain(message);
    expect(JSON.stringify(r.body)).not.toContain(SECRET);
    expect((await mounts()).length).toBe(before);
  });

  it('when a volume name is used twice, then create answers 400', async () => {
    const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume(), volume({ mountPath: '/other' })] }));
    expect([r.status, r.body.message]).toEqual([400, 'volume name "data" is used twice']);
  });
});

describe('secrets', () => {
  it('when a sandbox with credentials has lived and ended, then the key appears in no response, log or workflow history', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }));
    const id: string = created.body.id;
    const responses = [
      created.body,
      (await stack.request('GET', `/v1/sandboxes/${id}`)).body,
      (await stack.request('GET', '/v1/sandboxes')).body,
      (await stack.request('GET', `/v1/sandboxes/${id}/events`)).body,
      (await stack.request('GET', '/v1/mounts')).body,
      (await stack.request('GET', `/v1/workflows/sandbox/${id}`)).body,
    ];
    await stack.request('DELETE', `/v1/sandboxes/${id}`);
    await waitFor('unmounted', () => mountsUnder(mountRoot).length === 0, 20_000);

    const forms = [SECRET, Buffer.from(SECRET).toString('base64'), KEY_ID, Buffer.from(KEY_ID).toString('base64')];
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      // Histories as stored, fetched by a client without the key: what anyone with history access sees.
      // (Listing decodes memos, which are encrypted too, so it needs the key.)
      const lister = new Client({ connection, namespace: stack.namespace, dataConverter: payloadCodecsFor(PAYLOAD_KEY) });
      const raw = new Client({ connection, namespace: stack.namespace });
      const histories: string[] = [];
      for await (const wf of lister.workflow.list({ query: `WorkflowType = 'sandboxWorkflow' OR WorkflowType = 'mountWorkflow'` })) {
        histories.push(JSON.stringify(await raw.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory()));
      }
      expect(histories.length).toBeGreaterThan(2);
      const logs = ['api.log', 'worker.log'].map((f) => readFileSync(join(stack.dataDir, f), 'utf8'));
      for (const text of [...responses.map((r) => JSON.stringify(r)), ...histories, ...logs]) {
        for (const form of forms) expect(text).not.toContain(form);
      }
    } finally {
      await connection.close();
    }
  });
});
