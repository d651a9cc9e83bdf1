/**
 * Records the histories the replay test (replay.test.ts) replays: every kind of workflow Tidebox
 * runs, through its interesting paths, on the real pieces. Run after building, when a release
 * changes what running workflows look like (see docs/operations.md, "Changing workflow code"):
 *
 *   npm run build && node dist/tests/replay/record.js
 *
 * Histories are written to tests/replay/histories/<name>.json (historyToJSON), with payloads
 * encrypted under REPLAY_PAYLOAD_KEY, a key used for nothing else.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { releaseSignal, reserveUpdate, tenantWorkflowId, usageQuery } from '../../contracts/tenant-actor';
import { payloadCodecsFor } from '../../platform/payload-codec';
import { FakeKubelet, KubeTestCluster } from '../helpers/kube';
import { LocalS3, ossfsStackConfig } from '../helpers/s3';
import { repoRoot, sandboxRequest, Stack, waitFor } from '../helpers/stack';
import { REPLAY_PAYLOAD_KEY } from './replay-key';

const BUCKET = 'replay-bkt';
const [KEY_ID, SECRET] = ['REPLAYKEYID1', 'replay-secret-not-real'];

const out = join(repoRoot(), 'tests/replay/histories');

async function saver(client: Client) {
  mkdirSync(out, { recursive: true });
  return async (name: string, workflowId: string) => {
    const handle = client.workflow.getHandle(workflowId);
    await waitFor(`${workflowId} to close`, async () => (await handle.describe()).status.name !== 'RUNNING', 60_000, 200);
    writeFileSync(join(out, `${name}.json`), `${historyToJSON(await handle.fetchHistory())}\n`);
    console.log(`recorded ${name} (${workflowId})`);
  };
}

/**
 * On the Kubernetes runtime (a real kube-apiserver, FakeKubelet): a pod that no node can take. The
 * provisioning activity signals its Pending reason (runtimeProgress) until readyTimeoutSeconds, the
 * sandbox fails and is then deleted.
 */
async function recordKubernetes(): Promise<void> {
  const image = 'registry.example.com/gpu/trainer:1';
  const cluster = await KubeTestCluster.start();
  let stack: Stack | undefined;
  let kubelet: FakeKubelet | undefined;
  try {
    await cluster.createNamespace('replay');
    stack = await Stack.start({
      config: {
        runtime: { type: 'kubernetes' },
        kubernetes: { kubeconfig: cluster.kubeconfig, namespace: 'replay', readyTimeoutSeconds: 3 },
        security: { payloadKey: REPLAY_PAYLOAD_KEY },
      },
    });
    kubelet = new FakeKubelet(cluster, stack.instance);
    kubelet.behave(image, 'unschedulable');
    kubelet.start();
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      const save = await saver(new Client({ connection, dataConverter: payloadCodecsFor(REPLAY_PAYLOAD_KEY) }));
      const id = (await stack.request('POST', '/v1/sandboxes', sandboxRequest({ image: { uri: image } }))).body.id;
      const events = (await stack.request('GET', `/v1/sandboxes/${id}/events`)).body.events as Array<{ reason?: string }>;
      if (!events.some((e) => e.reason === 'Unschedulable')) throw new Error('no Unschedulable progress in the history');
      await stack.request('DELETE', `/v1/sandboxes/${id}`);
      await save('sandbox-pod-unschedulable', `sandbox/${id}`);
    } finally {
      await connection.close();
    }
  } finally {
    kubelet?.stop();
    await stack?.destroy();
    await cluster.stop();
  }
}

async function main(only = process.argv[2]): Promise<void> {
  if (only === 'sandbox-pod-unschedulable') return await recordKubernetes();
  const s3 = await LocalS3.start([BUCKET], [[KEY_ID, SECRET]]);
  const stack = await Stack.start({ config: ossfsStackConfig(REPLAY_PAYLOAD_KEY) });
  const connection = await Connection.connect({ address: stack.temporal.address });
  const client = new Client({ connection, dataConverter: payloadCodecsFor(REPLAY_PAYLOAD_KEY) });
  const save = await saver(client);
  const req = stack.request.bind(stack);
  const until = (what: string, probe: () => Promise<boolean>) => waitFor(what, probe, 60_000, 200);

  // A sandbox deleted while its container is being created: the create is cancelled (patch
  // delete-cancels-provisioning), compensated, and the sandbox ends Terminated without Failed.
  const deletedWhileProvisioning = async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'container-created' });
    const id = (await req('POST', '/v1/sandboxes', sandboxRequest(), { Prefer: 'respond-async' })).body.id;
    await until('the container-created fault point', async () => existsSync(stack.faultFile('container-created', id)));
    await req('DELETE', `/v1/sandboxes/${id}`);
    await save('sandbox-deleted-while-provisioning', `sandbox/${id}`);
    await stack.worker.stop();
    stack.startWorker();
  };

  // A warm pool (Docker: on its host's queue): filled, two members claimed (thawed inside the claim;
  // the second empties it, so it refills at once), refilled, deleted; and a sandbox that was a member.
  const pool = async () => {
    const { timeout: _timeout, ...template } = sandboxRequest();
    await req('POST', '/v1/pools', { name: 'replay', template, capacitySpec: { bufferMin: 2, bufferMax: 2, poolMin: 0, poolMax: 3 } });
    const available = (n: number) =>
      until(`${n} ready members`, async () => (await req('GET', '/v1/pools/replay')).body.status?.available === n);
    await available(2);
    const claimed: string[] = [];
    for (let i = 0; i < 2; i++)
      claimed.push((await req('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'replay' } })).body.id);
    await available(2);
    for (const id of claimed) await req('DELETE', `/v1/sandboxes/${id}`);
    await req('DELETE', '/v1/pools/replay');
    await save('pool-claimed-refilled-deleted', 'pool/default/replay');
    await save('sandbox-claimed-from-pool', `sandbox/${claimed[0]}`);
  };

  // The tenant's actor: a reserve Update (a tenant with limits), a record Signal (a create without
  // limits), releases (one sent as the API sends it, one by a teardown's local activity). It never
  // ends by itself: terminated to save the run.
  const tenant = async () => {
    const actor = client.workflow.getHandle(tenantWorkflowId('default'));
    const sandbox = (await req('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    await actor.executeUpdate(reserveUpdate, {
      args: [{ sandboxId: 'replay-reserved', reservation: { cpuMillis: 500, memoryBytes: 2 ** 28 }, limits: { maxSandboxes: 10 } }],
    });
    await actor.signal(releaseSignal, { sandboxId: 'replay-reserved' });
    await req('DELETE', `/v1/sandboxes/${sandbox}`);
    await until('the sandbox to give its share back', async () => (await actor.query(usageQuery)).sandboxes === 0);
    await actor.terminate('recorded');
    await save('tenant-reserved-released', tenantWorkflowId('default'));
  };

  try {
    // `record.js <name>`: record only that scenario, keeping the other files (they guard old code paths).
    if (only === 'sandbox-deleted-while-provisioning') return await deletedWhileProvisioning();
    if (only === 'pool') return await pool();
    if (only === 'tenant') return await tenant();
    if (only) throw new Error(`no scenario ${only} to record alone`);
    await deletedWhileProvisioning();
    await pool();

    // A sandbox through every API action, then deleted.
    const full = (await req('POST', '/v1/sandboxes', sandboxRequest({ metadata: { team: 'replay' } }))).body.id;
    await req('POST', `/v1/sandboxes/${full}/renew-expiration`, { expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    await req('PATCH', `/v1/sandboxes/${full}/metadata`, { stage: 'two', team: null });
    await req('POST', `/v1/sandboxes/${full}/pause`);
    await until('paused', async () => (await req('GET', `/v1/sandboxes/${full}`)).body.status.state === 'Paused');
    await req('POST', `/v1/sandboxes/${full}/resume`);
    await until('resumed', async () => (await req('GET', `/v1/sandboxes/${full}`)).body.status.state === 'Running');

    // A renew schedule: its runs are renewWorkflow executions.
    await req('PUT', `/v1/sandboxes/${full}/renew-schedule`, { intervalSeconds: 1, extendBySeconds: 3600 });
    await until('two schedule runs', async () => (await req('GET', `/v1/sandboxes/${full}/renew-schedule`)).body.runs >= 2);
    const lastRun: string = (await req('GET', `/v1/sandboxes/${full}/renew-schedule`)).body.lastRunWorkflowId;
    await req('DELETE', `/v1/sandboxes/${full}`);
    await save('sandbox-full-lifecycle', `sandbox/${full}`);
    await save('renew-run', lastRun);

    // A sandbox that expires, and one whose provisioning fails.
    const expiring = (await req('POST', '/v1/sandboxes', sandboxRequest({ timeout: 2 }))).body.id;
    const failing = (await req('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', 'exit 3'] }))).body.id;
    await req('DELETE', `/v1/sandboxes/${failing}`);
    await save('sandbox-expired', `sandbox/${expiring}`);
    await save('sandbox-failed-entrypoint', `sandbox/${failing}`);

    // A shared bucket mount: acquired, then released by the last holder.
    const withBucket = (
      await req(
        'POST',
        '/v1/sandboxes',
        sandboxRequest({
          volumes: [
            {
              name: 'data',
              mountPath: '/data',
              ossfs: {
                bucket: BUCKET,
                endpoint: s3.endpoint,
                version: '1.0',
                options: ['use_path_request_style'],
                accessKeyId: KEY_ID,
                accessKeySecret: SECRET,
              },
            },
          ],
        }),
      )
    ).body.id;
    const mountKey: string = (await req('GET', '/v1/mounts')).body.items[0].key;
    await req('DELETE', `/v1/sandboxes/${withBucket}`);
    await save('sandbox-with-bucket', `sandbox/${withBucket}`);
    await save('mount', `mount/local/${mountKey}`);

    // A snapshot: created, restored from, deleted.
    const source = (await req('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    const snap = (await req('POST', `/v1/sandboxes/${source}/snapshots`, { name: 'replay' })).body.id;
    await until('snapshot ready', async () => (await req('GET', `/v1/snapshots/${snap}`)).body.status.state === 'Ready');
    const restored = (await req('POST', '/v1/sandboxes', { snapshotId: snap, timeout: 600 })).body.id;
    await req('DELETE', `/v1/sandboxes/${restored}`);
    await req('DELETE', `/v1/snapshots/${snap}`);
    await save('snapshot-ready-deleted', `snapshot/${snap}`);
    await save('sandbox-restored', `sandbox/${restored}`);

    // A snapshot that fails at commit, is retried after the fix, becomes Ready and is deleted.
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_FAIL_AT: 'snapshot-commit' });
    const failed = (await req('POST', `/v1/sandboxes/${source}/snapshots`, {})).body.id;
    await until('snapshot failed', async () => (await req('GET', `/v1/snapshots/${failed}`)).body.status.state === 'Failed');
    await stack.worker.stop();
    stack.startWorker();
    await req('POST', `/v1/snapshots/${failed}/retry`);
    await until('snapshot ready after retry', async () => (await req('GET', `/v1/snapshots/${failed}`)).body.status.state === 'Ready');
    await req('DELETE', `/v1/sandboxes/${source}`);
    await req('DELETE', `/v1/snapshots/${failed}`);
    await save('snapshot-failed-retried', `snapshot/${failed}`);
    await save('sandbox-snapshot-source', `sandbox/${source}`);
    await tenant();
  } finally {
    await connection.close();
    await stack.destroy();
    await s3.stop();
  }
  await recordKubernetes();
  if (!existsSync(join(out, 'snapshot-failed-retried.json'))) throw new Error('recording incomplete');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
