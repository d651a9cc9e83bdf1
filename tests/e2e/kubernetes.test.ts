import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { idempotentSandboxId } from '../../api/temporal/sandbox-ids';
import { FakeKubelet, KubeTestCluster } from '../helpers/kube';
import { repoRoot, sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';
import { describeBlackBoxLifecycle } from './blackbox/lifecycle-suite';

/**
 * The Kubernetes runtime against a real kube-apiserver (scripts/k8s-test-cluster: etcd + apiserver on
 * 127.0.0.1). There are no nodes: FakeKubelet plays the kubelet by patching pod status, and tests
 * assert on API objects only, never on traffic to pod addresses.
 */
const KEY_A = 'k8s-acme-key-0123456789abcdef';
const KEY_B = 'k8s-globex-key-0123456789abcdef';
const KEY_GHOST = 'k8s-ghost-key-0123456789abcdef';
const ADMIN = 'k8s-admin-key-0123456789abcdef';
const NS_A = 'team-acme';
const NS_B = 'team-globex';

const UNSCHEDULABLE_IMAGE = 'registry.example.com/gpu/trainer:1';
const BAD_IMAGE = 'registry.example.com/no/such-image:1';
const HELD_IMAGE = 'registry.example.com/slow/start:1';

const dir = mkdtempSync(join(tmpdir(), 'tidebox-test-k8s-'));
let cluster: KubeTestCluster;
let stack: Stack;
let kubelet: FakeKubelet;

const manifests = join(repoRoot(), 'deploy/kubernetes');

beforeAll(async () => {
  cluster = await KubeTestCluster.start();
  await cluster.createNamespace(NS_A);
  await cluster.createNamespace(NS_B);
  // The shipped manifests, as an operator applies them; api and worker then run with exactly the
  // RBAC those grant (service-account tokens), not as cluster admin.
  for (const file of ['namespace.yaml', 'rbac.yaml', 'config.yaml', 'api.yaml', 'worker.yaml']) await cluster.apply(join(manifests, file));
  const apiKubeconfig = await cluster.kubeconfigForServiceAccount('tidebox-system', 'tidebox-api', join(dir, 'api.kubeconfig'));
  const workerKubeconfig = await cluster.kubeconfigForServiceAccount('tidebox-system', 'tidebox-worker', join(dir, 'worker.kubeconfig'));
  const tenantsFile = join(dir, 'tenants.toml');
  writeFileSync(
    tenantsFile,
    stringify({
      tenants: [
        { name: 'acme', namespace: NS_A, apiKeys: [KEY_A] },
        { name: 'globex', namespace: NS_B, apiKeys: [KEY_B] },
        { name: 'ghost', namespace: 'no-such-namespace', apiKeys: [KEY_GHOST] },
      ],
    }),
  );
  const templateFile = join(dir, 'pod-template.yaml');
  writeFileSync(
    templateFile,
    'metadata:\n  labels:\n    pool: sandboxes\nspec:\n  nodeSelector:\n    tidebox.io/pool: sandboxes\n  tolerations:\n  - key: tidebox.io/sandboxes\n    operator: Exists\n    effect: NoSchedule\n  restartPolicy: Always\n',
  );
  stack = await Stack.start({
    workerEnv: { TIDEBOX_KUBECONFIG: workerKubeconfig },
    config: {
      runtime: { type: 'kubernetes' },
      // Sweeps every 2 s, so every test here also runs against the orphan and missing-pod checks.
      kubernetes: {
        kubeconfig: apiKubeconfig,
        readyTimeoutSeconds: 4,
        pvcStorageSize: '2Gi',
        podTemplateFile: templateFile,
        sweepIntervalSeconds: 2,
        orphanGraceSeconds: 2,
      },
      tenants: { provider: 'file', file: tenantsFile, adminKeys: [ADMIN] },
      security: { payloadKey: randomBytes(32).toString('base64') },
      sandbox: { allowedHostPaths: ['/srv/sandboxes'] },
    },
  });
  kubelet = new FakeKubelet(cluster, stack.instance);
  kubelet.behave(UNSCHEDULABLE_IMAGE, 'unschedulable');
  kubelet.behave(BAD_IMAGE, 'image-pull-error');
  kubelet.behave(HELD_IMAGE, 'hold');
  kubelet.start();
}, 600_000);

afterAll(async () => {
  kubelet?.stop();
  await stack?.destroy();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const as =
  (key: string) =>
  (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    stack.request(method, path, body, { 'OPEN-SANDBOX-API-KEY': key, ...headers });
const A = as(KEY_A);
const B = as(KEY_B);
const admin = as(ADMIN);
const podsOf = (id: string) => cluster.pods(stack.instance, id);
const stateOf = async (id: string) => (await A('GET', `/v1/sandboxes/${id}`)).body?.status?.state;

describe('pods on a real kube-apiserver', () => {
  it('when a sandbox is created, then its pod has the expected spec in the tenant namespace; Running once the kubelet says so; delete removes pod and secret', async () => {
    const since = await cluster.resourceVersion(`/api/v1/namespaces/${NS_A}/secrets`);
    const created = await A(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({
        image: { uri: TEST_IMAGE, auth: { username: 'puller', password: 'registry-pass-123' } },
        resourceLimits: { cpu: '500m', memory: '128Mi' },
        env: { GREETING: 'hi' },
        metadata: { team: 'ml', pool: 'mine' },
        extensions: { 'tidebox.io/user-id': 'alice' },
        volumes: [
          { name: 'work', mountPath: '/work', subPath: 'proj', pvc: { claimName: 'shared-work', createIfNotExists: true } },
          { name: 'big', mountPath: '/big', pvc: { claimName: 'big-work', storage: '5Gi', accessModes: ['ReadWriteMany'] } },
          { name: 'cache', mountPath: '/cache', subPath: 'pip', host: { path: '/srv/sandboxes' } },
        ],
      }),
    );
    expect(created.status).toBe(202);
    expect(created.body.status.state).toBe('Running');
    const id: string = created.body.id;
    expect(JSON.stringify(created.body)).not.toContain('registry-pass-123');

    const [pod] = await podsOf(id);
    expect(pod.metadata).toMatchObject({
      name: `sandbox-${id}`,
      namespace: NS_A,
      labels: { 'tidebox.io/sandbox-id': id, 'tidebox.io/tenant': 'acme', 'tidebox.io/user-id': 'alice', 'metadata.tidebox.io/team': 'ml' },
    });
    const c = pod.spec.containers[0];
    expect(c).toMatchObject({ image: TEST_IMAGE, command: ['tail', '-f', '/dev/null'], env: [{ name: 'GREETING', value: 'hi' }] });
    expect(c.resources).toEqual({
      requests: { cpu: '500m', memory: '128Mi', 'ephemeral-storage': '10Gi' },
      limits: { cpu: '500m', memory: '128Mi', 'ephemeral-storage': '10Gi' },
    });
    // The Pod Security "restricted" profile, field by field (kubernetes.runAsNonRoot defaults to true).
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
      runAsNonRoot: true,
    });
    expect(pod.spec.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' }, runAsNonRoot: true });
    expect(pod.spec.hostNetwork ?? false).toBe(false);
    expect(pod.spec.hostPID ?? false).toBe(false);
    expect(pod.spec.hostIPC ?? false).toBe(false);
    expect(c.securityContext.privileged ?? false).toBe(false);
    // The tenant namespace got the sandboxes' default-deny NetworkPolicy before this first pod.
    const policy = (await cluster.get(`/apis/networking.k8s.io/v1/namespaces/${NS_A}/networkpolicies/tidebox-sandboxes`)).body;
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.podSelector.matchLabels).toEqual({ 'tidebox.io/managed': 'true', 'tidebox.io/instance': stack.instance });
    expect(policy.spec.ingress[0].from).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'tidebox-system' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'tidebox', 'app.kubernetes.io/component': 'api' } },
    });
    const open = policy.spec.egress.find((r: { to: Array<{ ipBlock?: { cidr: string } }> }) => r.to[0]?.ipBlock?.cidr === '0.0.0.0/0');
    expect(open.to[0].ipBlock.except).toEqual(expect.arrayContaining(['169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']));
    expect(c.volumeMounts).toContainEqual({ name: 'pvc-0', mountPath: '/work', subPath: 'acme/users/alice/proj' });
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      imagePullSecrets: [{ name: `sandbox-${id}-pull` }],
    });
    expect(pod.spec.volumes).toContainEqual({ name: 'pvc-0', persistentVolumeClaim: { claimName: 'shared-work' } });
    // A host volume is the user's area on the node; the rest is a subPath, which the kubelet keeps inside it.
    expect(pod.spec.volumes).toContainEqual({
      name: 'host-0',
      hostPath: { path: '/srv/sandboxes/acme/users/alice', type: 'DirectoryOrCreate' },
    });
    expect(c.volumeMounts).toContainEqual({ name: 'host-0', mountPath: '/cache', subPath: 'pip' });
    // The operator's template is merged under the pod; what Tidebox sets (restartPolicy) wins, and
    // user metadata does not replace the template's labels (policies select pods by them).
    expect(pod.metadata.labels.pool).toBe('sandboxes');
    expect(pod.spec.nodeSelector).toEqual({ 'tidebox.io/pool': 'sandboxes' });
    expect(pod.spec.tolerations).toContainEqual({ key: 'tidebox.io/sandboxes', operator: 'Exists', effect: 'NoSchedule' });

    const claim = await cluster.get(`/api/v1/namespaces/${NS_A}/persistentvolumeclaims/shared-work`);
    expect(claim.status).toBe(200);
    expect(claim.body.spec.resources.requests.storage).toBe('2Gi');
    const big = await cluster.get(`/api/v1/namespaces/${NS_A}/persistentvolumeclaims/big-work`);
    expect(big.body.spec).toMatchObject({ accessModes: ['ReadWriteMany'], resources: { requests: { storage: '5Gi' } } });

    const secret = await cluster.get(`/api/v1/namespaces/${NS_A}/secrets/sandbox-${id}-pull`);
    expect(secret.body.type).toBe('kubernetes.io/dockerconfigjson');
    expect(secret.body.metadata.ownerReferences[0]).toMatchObject({ kind: 'Pod', uid: pod.metadata.uid });
    // The secret was made before the pod, so the kubelet's first pull already had the credentials.
    const addedAt = async (kind: string, name: string) =>
      BigInt(
        (await cluster.eventsSince(`/api/v1/namespaces/${NS_A}/${kind}`, since)).find(
          (e) => e.type === 'ADDED' && e.object.metadata.name === name,
        )!.object.metadata.resourceVersion,
      );
    expect(await addedAt('secrets', `sandbox-${id}-pull`)).toBeLessThan(await addedAt('pods', `sandbox-${id}`));

    const endpoint = await A('GET', `/v1/sandboxes/${id}/endpoints/8080`);
    expect(endpoint.body.endpoint).toBe(`${pod.status.podIP}:8080`);

    // execd (44772) is served by Tidebox here too, through the API server's pod exec with the API's
    // own service account. This control plane has no kubelet to run it: the exec is authorised
    // (RBAC above) and routed to the pod's node, which does not answer; the client gets a clean error.
    const execd = await A('GET', `/v1/sandboxes/${id}/endpoints/44772`);
    expect(execd.body).toEqual({
      endpoint: `${new URL(stack.baseUrl).host}/sandboxes/${id}/proxy/44772`,
      headers: { 'X-EXECD-ACCESS-TOKEN': expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
    });
    const run = await stack.request('POST', `/v1/sandboxes/${id}/proxy/44772/command`, { command: 'echo hi' }, execd.body.headers);
    expect(run.status).toBeGreaterThanOrEqual(400);
    expect(run.body.message).toMatch(/^pod exec refused \((?!403)\d{3}\)/);
    expect((await B('POST', `/v1/sandboxes/${id}/proxy/44772/command`, { command: 'echo hi' })).status).toBe(404);

    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await podsOf(id)).toEqual([]);
    expect((await cluster.get(`/api/v1/namespaces/${NS_A}/secrets/sandbox-${id}-pull`)).status).toBe(404);
    // The claim holds every user's data: it stays.
    expect((await cluster.get(`/api/v1/namespaces/${NS_A}/persistentvolumeclaims/shared-work`)).status).toBe(200);
  });

  it("when the tenant's namespace does not exist, then create answers 400 and no pod is made", async () => {
    const r = await as(KEY_GHOST)('POST', '/v1/sandboxes', sandboxRequest());
    expect([r.status, r.body.code]).toEqual([400, 'SANDBOX::INVALID_PARAMETER']);
    expect(r.body.message).toContain('namespace no-such-namespace of tenant ghost does not exist');
    expect(await cluster.pods(stack.instance).then((pods) => pods.filter((p) => p.metadata.namespace === 'no-such-namespace'))).toEqual([]);
  });

  it('when the image cannot be pulled, then the sandbox is Failed with the kubelet reason and its pod is removed', async () => {
    const r = await A('POST', '/v1/sandboxes', sandboxRequest({ image: { uri: BAD_IMAGE } }));
    expect(r.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::IMAGE_UNAVAILABLE' });
    expect(r.body.status.message).toContain('ImagePullBackOff');
    expect(await podsOf(r.body.id)).toEqual([]);
  });

  it('when no node can take the pod, then the Pending sandbox says why, and after readyTimeoutSeconds it is Failed with the scheduler message', async () => {
    const r = await A(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ image: { uri: UNSCHEDULABLE_IMAGE }, resourceLimits: { cpu: '1', memory: '1Gi', gpu: '1' } }),
      { Prefer: 'respond-async' },
    );
    const id: string = r.body.id;
    let pending: { state: string; reason?: string; message?: string } | undefined;
    await waitFor(
      'the scheduler reason in the Pending status',
      async () => {
        const status = (await A('GET', `/v1/sandboxes/${id}`)).body.status;
        if (status.state === 'Pending' && status.reason === 'Unschedulable') pending = status;
        return pending !== undefined || status.state !== 'Pending';
      },
      20_000,
      100,
    );
    expect(pending?.message).toContain('Insufficient nvidia.com/gpu');
    await waitFor('Failed', async () => (await stateOf(id)) === 'Failed', 20_000);
    const failed = (await A('GET', `/v1/sandboxes/${id}`)).body.status;
    expect(failed).toMatchObject({ state: 'Failed', reason: 'SANDBOX::POD_UNSCHEDULABLE' });
    expect(failed.message).toContain('Insufficient nvidia.com/gpu');
    expect(await podsOf(id)).toEqual([]);
    const events = (await A('GET', `/v1/sandboxes/${id}/events`)).body.events;
    expect(events.map((e: { state: string; reason?: string }) => [e.state, e.reason])).toEqual([
      ['Pending', 'provisioning'],
      ['Pending', 'Unschedulable'],
      ['Failed', 'SANDBOX::POD_UNSCHEDULABLE'],
    ]);
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when a Running pod is deleted behind Tidebox, then the sandbox becomes Failed with that reason', async () => {
    const id: string = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    expect(await stateOf(id)).toBe('Running');
    const gone = await cluster.request('DELETE', `/api/v1/namespaces/${NS_A}/pods/sandbox-${id}?gracePeriodSeconds=0`);
    expect(gone.status).toBe(200);
    await waitFor('Failed', async () => (await stateOf(id)) === 'Failed', 20_000);
    const got = await A('GET', `/v1/sandboxes/${id}`);
    expect(got.body.status).toMatchObject({ reason: 'SANDBOX::CONTAINER_EXITED' });
    expect(got.body.status.message).toContain('deleted outside Tidebox');
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when a pod is deleted while no worker runs, then the restarted worker finds it missing and the sandbox becomes Failed', async () => {
    const id: string = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    expect(await stateOf(id)).toBe('Running');
    await stack.worker.stop();
    expect((await cluster.request('DELETE', `/api/v1/namespaces/${NS_A}/pods/sandbox-${id}?gracePeriodSeconds=0`)).status).toBe(200);
    expect(await stateOf(id)).toBe('Running'); // nobody watching: Temporal still says Running
    stack.startWorker();
    await waitFor('Failed after the start-up sweep', async () => (await stateOf(id)) === 'Failed', 30_000, 200);
    expect((await A('GET', `/v1/sandboxes/${id}`)).body.status.message).toContain('no longer exists');
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when a sandbox pod has no open sandbox (a create that landed after its sandbox ended), then the worker deletes it and its secret', async () => {
    const ghost = randomUUID();
    const labels = { 'tidebox.io/managed': 'true', 'tidebox.io/instance': stack.instance, 'tidebox.io/sandbox-id': ghost };
    const made = await cluster.request('POST', `/api/v1/namespaces/${NS_A}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `sandbox-${ghost}`, labels },
      spec: { containers: [{ name: 'sandbox', image: TEST_IMAGE }] },
    });
    expect(made.status).toBe(201);
    const secret = await cluster.request('POST', `/api/v1/namespaces/${NS_A}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `sandbox-${ghost}-pull`, labels },
    });
    expect(secret.status).toBe(201);
    // A live sandbox's pod next to it stays.
    const live: string = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    // The pod goes first, then its secret (deleteSandboxPod): wait for both.
    await waitFor(
      'the orphan and its pull secret removed',
      async () =>
        (await podsOf(ghost)).length === 0 &&
        (await cluster.get(`/api/v1/namespaces/${NS_A}/secrets/sandbox-${ghost}-pull`)).status === 404,
      30_000,
      200,
    );
    // Past the grace time and several sweeps: the live pod is still there and its sandbox Running.
    await waitFor(
      'the live pod to outlive the grace time',
      async () => Date.now() - Date.parse((await podsOf(live))[0].metadata.creationTimestamp) > 5_000,
      20_000,
      200,
    );
    expect(await stateOf(live)).toBe('Running');
    expect(await podsOf(live)).toHaveLength(1);
    expect((await A('DELETE', `/v1/sandboxes/${live}`)).status).toBe(204);
  });

  it("when another install's pod already has the sandbox's name, then the sandbox fails and neither that pod nor its secret is touched", async () => {
    // Idempotency-Key ids are derived from tenant + key, so two installs can arrive at one pod name.
    const key = `collide-${Date.now()}`;
    const id = idempotentSandboxId('acme', key);
    const labels = { 'tidebox.io/managed': 'true', 'tidebox.io/instance': 'another-install', 'tidebox.io/sandbox-id': id };
    const theirs = await cluster.request('POST', `/api/v1/namespaces/${NS_A}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `sandbox-${id}`, labels },
      spec: { containers: [{ name: 'sandbox', image: TEST_IMAGE }] },
    });
    expect(theirs.status).toBe(201);
    expect(
      (
        await cluster.request('POST', `/api/v1/namespaces/${NS_A}/secrets`, {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: `sandbox-${id}-pull`, labels },
        })
      ).status,
    ).toBe(201);
    try {
      const r = await A('POST', '/v1/sandboxes', sandboxRequest(), { 'Idempotency-Key': key });
      expect(r.body.id).toBe(id);
      expect(r.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::RUNTIME_REJECTED' });
      expect(r.body.status.message).toContain("is not this sandbox's");
      expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
      const still = await cluster.get(`/api/v1/namespaces/${NS_A}/pods/sandbox-${id}`);
      expect([still.status, still.body.metadata.uid]).toEqual([200, theirs.body.metadata.uid]);
      expect((await cluster.get(`/api/v1/namespaces/${NS_A}/secrets/sandbox-${id}-pull`)).status).toBe(200);
    } finally {
      await cluster.request('DELETE', `/api/v1/namespaces/${NS_A}/pods/sandbox-${id}?gracePeriodSeconds=0`);
      await cluster.request('DELETE', `/api/v1/namespaces/${NS_A}/secrets/sandbox-${id}-pull`);
    }
  });

  it('when the pod container exits on its own, then the sandbox becomes Failed with the exit code', async () => {
    const id: string = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    await cluster.patchPodStatus(NS_A, `sandbox-${id}`, {
      phase: 'Failed',
      containerStatuses: [
        {
          name: 'sandbox',
          image: TEST_IMAGE,
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
        },
      ],
    });
    await waitFor('Failed', async () => (await stateOf(id)) === 'Failed', 20_000);
    expect((await A('GET', `/v1/sandboxes/${id}`)).body.status.message).toContain('OOMKilled (exit code 137)');
    expect(await podsOf(id)).toEqual([]);
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when the worker is SIGKILLed right after the pod is created, then after restart exactly one pod exists and the sandbox runs', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'container-created' });
    const created = await A('POST', '/v1/sandboxes', sandboxRequest(), { Prefer: 'respond-async' });
    const id: string = created.body.id;
    await waitFor('the container-created fault point', () => existsSync(stack.faultFile('container-created', id)), 30_000);
    await stack.worker.kill();
    const [before] = await podsOf(id);
    expect(before).toBeDefined();

    stack.startWorker();
    await waitFor('Running after restart', async () => (await stateOf(id)) === 'Running', 60_000, 200);
    const after = await podsOf(id);
    expect(after.map((p) => p.metadata.uid)).toEqual([before.metadata.uid]);
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await podsOf(id)).toEqual([]);
  });

  it("when two tenants create sandboxes, then each pod is in its tenant's namespace and neither tenant sees the other's", async () => {
    const a: string = (await A('POST', '/v1/sandboxes', sandboxRequest({ metadata: { probe: 'isolation' } }))).body.id;
    const b: string = (await B('POST', '/v1/sandboxes', sandboxRequest({ metadata: { probe: 'isolation' } }))).body.id;
    expect((await podsOf(a))[0].metadata.namespace).toBe(NS_A);
    expect((await podsOf(b))[0].metadata.namespace).toBe(NS_B);
    expect((await A('GET', `/v1/sandboxes/${b}`)).status).toBe(404);
    expect((await B('GET', `/v1/sandboxes/${a}`)).status).toBe(404);
    expect((await B('DELETE', `/v1/sandboxes/${a}`)).status).toBe(404);
    const listA = (await A('GET', '/v1/sandboxes?metadata=probe%3Disolation')).body.items.map((s: { id: string }) => s.id);
    expect(listA).toEqual([a]);
    const all = (await admin('GET', '/v1/sandboxes?metadata=probe%3Disolation')).body.items.map((s: { id: string }) => s.id);
    expect(all.sort()).toEqual([a, b].sort());
    expect(await podsOf(a)).toHaveLength(1);
    for (const [who, id] of [
      [A, a],
      [B, b],
    ] as const)
      expect((await who('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect([...(await podsOf(a)), ...(await podsOf(b))]).toEqual([]);
  });

  it('when a pool is made, then its members are running pods in the tenant namespace; a claim hands one over, labels and all; the pool refills and its deletion removes the rest', async () => {
    const template = {
      image: { uri: TEST_IMAGE },
      entrypoint: ['tail', '-f', '/dev/null'],
      resourceLimits: { cpu: '250m', memory: '64Mi' },
    };
    const made = await A('POST', '/v1/pools', {
      name: 'kp',
      template,
      capacitySpec: { bufferMin: 1, bufferMax: 1, poolMin: 0, poolMax: 2 },
    });
    expect(made.status).toBe(201);
    const ready = async () =>
      waitFor(
        'a ready member',
        async () => {
          const { body } = await A('GET', '/v1/pools/kp');
          return body.status?.available === 1 && body.status.warming === 0 ? body : undefined;
        },
        30_000,
        200,
      );
    await ready();
    const members = async () => (await cluster.pods(stack.instance)).filter((p) => p.metadata.labels['tidebox.io/pool'] === 'kp');
    const [member] = await members();
    expect(member.metadata).toMatchObject({
      namespace: NS_A,
      labels: { 'tidebox.io/tenant': 'acme' },
      annotations: { 'tidebox.io/pool': 'pool/acme/kp' },
    });
    expect(member.status.phase).toBe('Running');
    // Sweeps run every 2 s with a 2 s grace: a member its pool holds is no orphan.
    await new Promise((r) => setTimeout(r, 5000));
    expect((await members()).map((p) => p.metadata.uid)).toEqual([member.metadata.uid]);

    const claim = await A('POST', '/v1/sandboxes', { timeout: 300, metadata: { team: 'blue' }, extensions: { poolRef: 'kp' } });
    expect(claim.status).toBe(202);
    expect(claim.body.status.state).toBe('Running');
    const id: string = claim.body.id;
    expect(member.metadata.labels['tidebox.io/sandbox-id']).toBe(id);
    // The very pod, handed over: the pool's label and annotation gone, the sandbox's metadata on it.
    const [pod] = await podsOf(id);
    expect(pod.metadata.uid).toBe(member.metadata.uid);
    expect(pod.metadata.labels['tidebox.io/pool']).toBeUndefined();
    expect(pod.metadata.annotations['tidebox.io/pool']).toBeUndefined();
    expect(pod.metadata.labels['metadata.tidebox.io/team']).toBe('blue');
    expect(JSON.parse(pod.metadata.annotations['tidebox.io/metadata'])).toEqual({ team: 'blue' });
    expect((await A('GET', `/v1/sandboxes/${id}`)).body).toMatchObject({ metadata: { team: 'blue' }, status: { state: 'Running' } });

    // The pool makes up for it with a new pod; another tenant never sees the pool.
    const refilled = await ready();
    expect(refilled.claims).toBe(1);
    const [next] = await members();
    expect(next.metadata.uid).not.toBe(member.metadata.uid);
    expect((await B('GET', '/v1/pools/kp')).status).toBe(404);

    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await podsOf(id)).toHaveLength(0);
    expect((await A('DELETE', '/v1/pools/kp')).status).toBe(204);
    await waitFor('the pool members to be gone', async () => (await members()).length === 0, 30_000, 250);
  }, 120_000);

  it('when a sandbox is deleted while its pod is still starting, then the start is cancelled (no start timeout, no Failed) and no pod is left', async () => {
    const created = await A('POST', '/v1/sandboxes', sandboxRequest({ image: { uri: HELD_IMAGE } }), { Prefer: 'respond-async' });
    const id: string = created.body.id;
    await waitFor('the pod', async () => (await podsOf(id)).length === 1, 20_000);
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await podsOf(id)).toEqual([]);
    const events = (await A('GET', `/v1/sandboxes/${id}/events`)).body.events;
    // Without cancellation the start would have run into readyTimeoutSeconds and recorded Failed first.
    expect(events.map((e: { state: string }) => e.state)).toEqual(['Pending', 'Stopping', 'Terminated']);
  });

  it('when pause, resume, snapshots, restore or bucket volumes are asked for, then clear 501/400 answers and nothing changes', async () => {
    const id: string = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id;
    for (const path of [`/v1/sandboxes/${id}/pause`, `/v1/sandboxes/${id}/resume`, `/v1/sandboxes/${id}/snapshots`]) {
      const r = await A('POST', path, path.endsWith('snapshots') ? {} : undefined);
      expect([r.status, r.body.code]).toEqual([501, 'SANDBOX::NOT_SUPPORTED_BY_RUNTIME']);
    }
    expect((await A('POST', '/v1/sandboxes/nope/pause')).status).toBe(404);
    const restore = await A('POST', '/v1/sandboxes', { snapshotId: 'abc', timeout: 60 });
    expect(restore.status).toBe(501);
    const bucket = await A(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({
        volumes: [
          { name: 'b', mountPath: '/b', ossfs: { bucket: 'bkt', endpoint: 'oss.example.com', accessKeyId: 'a', accessKeySecret: 'b' } },
        ],
      }),
    );
    expect([bucket.status, bucket.body.code]).toEqual([400, 'SANDBOX::UNSUPPORTED']);
    expect(await stateOf(id)).toBe('Running');
    expect(await podsOf(id)).toHaveLength(1);
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('deploy/kubernetes', () => {
  it('when the manifests are applied, then the worker and API service accounts may do what the runtime needs and nothing broader', async () => {
    const worker = 'system:serviceaccount:tidebox-system:tidebox-worker';
    const api = 'system:serviceaccount:tidebox-system:tidebox-api';
    // patch: a warm pool member's labels, handed to the sandbox that claims it.
    for (const verb of ['get', 'list', 'watch', 'create', 'delete', 'patch'])
      expect([verb, await cluster.can(worker, verb, 'pods', NS_A)]).toEqual([verb, true]);
    expect(await cluster.can(worker, 'list', 'pods')).toBe(true); // the cluster-wide watch
    for (const verb of ['create', 'update', 'delete']) expect(await cluster.can(worker, verb, 'secrets', NS_B)).toBe(true);
    expect(await cluster.can(worker, 'create', 'persistentvolumeclaims', NS_B)).toBe(true);
    expect(await cluster.can(api, 'get', 'namespaces')).toBe(true);
    expect(await cluster.can(api, 'create', 'pods', NS_A, 'exec')).toBe(true); // execd
    expect(await cluster.can(api, 'get', 'pods', NS_A)).toBe(false);
    // Not granted: pod status (it comes with the pod), reading other secrets, changing pod status, the
    // worker exec (only the API serves execd), namespaces, the API creating or reading pods.
    expect(await cluster.can(worker, 'get', 'pods', NS_A, 'status')).toBe(false);
    expect(await cluster.can(worker, 'get', 'secrets', NS_A)).toBe(false);
    expect(await cluster.can(worker, 'list', 'secrets')).toBe(false);
    expect(await cluster.can(worker, 'patch', 'pods', NS_A, 'status')).toBe(false);
    expect(await cluster.can(worker, 'create', 'pods', NS_A, 'exec')).toBe(false);
    expect(await cluster.can(worker, 'delete', 'namespaces')).toBe(false);
    expect(await cluster.can(api, 'create', 'pods', NS_A)).toBe(false);
    expect(await cluster.can(api, 'list', 'secrets')).toBe(false);
  });
});

describe('single-tenant install with gateway ingress', () => {
  it('when no tenants are configured, then pods go to kubernetes.namespace and endpoints name the gateway with the routing header', async () => {
    const single = await Stack.start({
      apiKey: 'k8s-single-key-0123456789abcdef',
      workerEnv: { TIDEBOX_KUBECONFIG: join(dir, 'worker.kubeconfig') },
      config: {
        runtime: { type: 'kubernetes' },
        kubernetes: { kubeconfig: join(dir, 'api.kubeconfig'), namespace: NS_B, readyTimeoutSeconds: 4 },
        ingress: { mode: 'gateway', gateway: { address: 'gateway.example.com:8443', route: { mode: 'header' } } },
      },
    });
    const kubelet2 = new FakeKubelet(cluster, single.instance);
    kubelet2.start();
    try {
      const created = await single.request('POST', '/v1/sandboxes', sandboxRequest());
      expect(created.body.status.state).toBe('Running');
      const id: string = created.body.id;
      const [pod] = await cluster.pods(single.instance, id);
      expect(pod.metadata.namespace).toBe(NS_B);
      expect(pod.metadata.labels['tidebox.io/tenant']).toBe('default');
      const endpoint = await single.request('GET', `/v1/sandboxes/${id}/endpoints/8080`);
      expect(endpoint.body).toEqual({ endpoint: 'gateway.example.com:8443', headers: { 'OpenSandbox-Ingress-To': `${id}-8080` } });
      expect((await single.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
      expect(await cluster.pods(single.instance, id)).toEqual([]);
    } finally {
      kubelet2.stop();
      await single.destroy();
    }
  });
});

describeBlackBoxLifecycle('kubernetes', () => ({
  stack,
  headers: { 'OPEN-SANDBOX-API-KEY': KEY_A },
  workloads: async (id) => (await podsOf(id)).length,
  endpoint: /^192\.0\.2\.\d+:8080$/,
}));
