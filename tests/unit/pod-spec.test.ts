import type { V1Pod } from '@kubernetes/client-node';
import {
  adoptionPatch,
  buildClaim,
  buildPod,
  buildPullSecret,
  deepMerge,
  hostVolumeSource,
  METADATA_ANNOTATION,
  podProgress,
  registryOf,
} from '../../activities/kubernetes/pod-spec';
import { parseConfig } from '../../core/config';
import { normalizeCreateRequest } from '../../core/create-request';
import { createSandboxRequestSchema } from '../../core/schemas';
import type { SandboxSpec } from '../../core/sandbox';

const config = parseConfig({ sandbox: { allowedHostPaths: ['/srv/data'] } });
const schema = createSandboxRequestSchema(config.sandbox);
const id = { sandboxId: '0b5c6e0e-1111-4222-8333-444455556666', tenant: 'acme', namespace: 'team-acme', userId: 'alice' };
const settings = {
  instance: 'tidebox',
  authImagePullPolicy: 'Always' as const,
  ephemeralStorage: '10Gi',
  runAsNonRoot: false,
  ports: [44772, 8080],
  allowedHostPaths: ['/srv/data'],
};

function specOf(body: Record<string, unknown>, extra: Partial<Parameters<typeof normalizeCreateRequest>[2]> = {}): SandboxSpec {
  return normalizeCreateRequest(
    schema.parse({ image: { uri: 'busybox:1.36' }, entrypoint: ['sleep', '3600'], extensions: { 'tidebox.io/user-id': 'alice' }, ...body }),
    config.sandbox,
    {
      tenant: 'acme',
      runtime: 'kubernetes',
      payloadsEncrypted: true,
      ...extra,
    },
  );
}

describe('the sandbox pod', () => {
  it('when a sandbox is built into a pod, then it has the name, labels, resources, security context and restart policy', () => {
    const pod = buildPod(
      id,
      specOf({
        resourceLimits: { cpu: '500m', memory: '256Mi', gpu: '1' },
        env: { A: '1' },
        metadata: { team: 'ml', note: 'free text value' },
      }),
      settings,
    );
    expect(pod.metadata).toMatchObject({
      name: `sandbox-${id.sandboxId}`,
      namespace: 'team-acme',
      labels: {
        'tidebox.io/sandbox-id': id.sandboxId,
        'tidebox.io/tenant': 'acme',
        'tidebox.io/instance': 'tidebox',
        'tidebox.io/user-id': 'alice',
        'metadata.tidebox.io/team': 'ml',
      },
    });
    // A value that is not a label value stays out of the labels but is kept in the annotation.
    expect(Object.keys(pod.metadata!.labels!).filter((k) => k.includes('note'))).toEqual([]);
    expect(pod.metadata!.labels).not.toHaveProperty('team');
    expect(JSON.parse(pod.metadata!.annotations![METADATA_ANNOTATION]!)).toEqual({ team: 'ml', note: 'free text value' });
    const c = pod.spec!.containers[0]!;
    expect(c).toMatchObject({ name: 'sandbox', image: 'busybox:1.36', command: ['sleep', '3600'], env: [{ name: 'A', value: '1' }] });
    expect(c.resources).toEqual({
      requests: { cpu: '500m', memory: '256Mi', 'nvidia.com/gpu': '1', 'ephemeral-storage': '10Gi' },
      limits: { cpu: '500m', memory: '256Mi', 'nvidia.com/gpu': '1', 'ephemeral-storage': '10Gi' },
    });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.ports).toEqual([
      { containerPort: 44772, protocol: 'TCP' },
      { containerPort: 8080, protocol: 'TCP' },
    ]);
    expect(pod.spec).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, enableServiceLinks: false });
    expect(pod.spec!.imagePullSecrets).toBeUndefined();
  });

  it('when runAsNonRoot is configured, then pod and container both ask for it', () => {
    const pod = buildPod(id, specOf({}), { ...settings, runAsNonRoot: true });
    expect(pod.spec!.securityContext!.runAsNonRoot).toBe(true);
    expect(pod.spec!.containers[0]!.securityContext!.runAsNonRoot).toBe(true);
  });

  it('when a pvc volume is requested, then the claim is mounted with the subPath scoped under tenant and user', () => {
    const pod = buildPod(
      id,
      specOf({ volumes: [{ name: 'work', mountPath: '/work', subPath: 'proj', pvc: { claimName: 'shared' } }] }),
      settings,
    );
    expect(pod.spec!.volumes).toEqual([{ name: 'pvc-0', persistentVolumeClaim: { claimName: 'shared', readOnly: false } }]);
    expect(pod.spec!.containers[0]!.volumeMounts).toEqual([
      { name: 'pvc-0', mountPath: '/work', readOnly: false, subPath: 'acme/users/alice/proj' },
    ]);
  });

  it("when a host volume is requested, then the hostPath is the user's area (created on the node) and the rest a subPath the kubelet confines to it", () => {
    const pod = buildPod(
      id,
      specOf({ volumes: [{ name: 'h', mountPath: '/h', readOnly: true, subPath: 'x/y', host: { path: '/srv/data' } }] }),
      settings,
    );
    expect(pod.spec!.volumes).toEqual([{ name: 'host-0', hostPath: { path: '/srv/data/acme/users/alice', type: 'DirectoryOrCreate' } }]);
    expect(pod.spec!.containers[0]!.volumeMounts).toEqual([{ name: 'host-0', mountPath: '/h', readOnly: true, subPath: 'x/y' }]);
    const whole = buildPod(id, specOf({ volumes: [{ name: 'h', mountPath: '/h', host: { path: '/srv/data' } }] }), settings);
    expect(whole.spec!.containers[0]!.volumeMounts).toEqual([{ name: 'host-0', mountPath: '/h', readOnly: false }]);
  });

  it('when a legacy-layout host volume is requested, then the hostPath is the allowed prefix holding it and the rest a subPath', () => {
    const legacy = { ...settings, allowedHostPaths: ['/srv/other', '/srv/data'] };
    const v = { name: 'h', hostPath: '/srv/data/shared/x', mountPath: '/h', readOnly: false };
    expect(hostVolumeSource(v, legacy.allowedHostPaths)).toEqual({ path: '/srv/data', type: 'Directory', subPath: 'shared/x' });
    expect(hostVolumeSource({ ...v, hostPath: '/srv/data' }, legacy.allowedHostPaths)).toEqual({
      path: '/srv/data',
      type: 'Directory',
      subPath: '',
    });
    expect(hostVolumeSource({ ...v, hostPath: '/x/y' }, ['/'])).toEqual({ path: '/', type: 'Directory', subPath: 'x/y' });
    expect(() => hostVolumeSource({ ...v, hostPath: '/etc' }, legacy.allowedHostPaths)).toThrow(/outside the allowed host paths/);
  });

  it("when metadata names a template label or a selector's label, or the user id is no label value, then no such label changes and the id goes to an annotation", () => {
    const template = { metadata: { labels: { pool: 'sandboxes' } } };
    const metadata = {
      pool: 'escape',
      team: 'ml',
      'app.kubernetes.io/component': 'api',
      app: 'tidebox',
    };
    const pod = buildPod({ ...id, userId: '_bob' }, specOf({ metadata }), { ...settings, template });
    const labels = pod.metadata!.labels!;
    expect(labels).toMatchObject({ pool: 'sandboxes', 'metadata.tidebox.io/team': 'ml', 'metadata.tidebox.io/app': 'tidebox' });
    // Keys with a prefix (or no label name) are only in the annotation; nothing unprefixed comes from metadata.
    expect(labels).not.toHaveProperty('app.kubernetes.io/component');
    expect(labels).not.toHaveProperty('app');
    expect(Object.keys(labels).filter((k) => !k.startsWith('tidebox.io/') && !k.startsWith('metadata.tidebox.io/'))).toEqual(['pool']);
    expect(JSON.parse(pod.metadata!.annotations![METADATA_ANNOTATION]!)).toEqual(metadata);
    expect(pod.metadata!.labels).not.toHaveProperty('tidebox.io/user-id');
    expect(pod.metadata!.annotations!['tidebox.io/user-id']).toBe('_bob');
  });

  it('when image.auth is given, then the pod names a pull secret and the secret (owned by the pod) holds a dockerconfigjson', () => {
    const spec = specOf({ image: { uri: 'registry.example.com:5000/team/app:1', auth: { username: 'bob', password: 's3cret' } } });
    const pod = buildPod(id, spec, settings);
    expect(pod.spec!.imagePullSecrets).toEqual([{ name: `sandbox-${id.sandboxId}-pull` }]);
    // Pulled with this caller's credentials every time: a node's cached copy never runs for a tenant without them.
    expect(pod.spec!.containers[0]!.imagePullPolicy).toBe('Always');
    expect(buildPod(id, specOf({}), { ...settings, imagePullPolicy: 'IfNotPresent' }).spec!.containers[0]!.imagePullPolicy).toBe(
      'IfNotPresent',
    );
    const secret = buildPullSecret(id, 'tidebox', spec.image.uri, spec.imageAuth!, { name: pod.metadata!.name!, uid: 'uid-1' });
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    expect(secret.metadata!.ownerReferences).toEqual([
      { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name, uid: 'uid-1', blockOwnerDeletion: false },
    ]);
    const config = JSON.parse(Buffer.from(secret.data!['.dockerconfigjson']!, 'base64').toString());
    expect(config.auths['registry.example.com:5000']).toEqual({
      username: 'bob',
      password: 's3cret',
      auth: Buffer.from('bob:s3cret').toString('base64'),
    });
    // The view never carries the credentials; the spec keeps them apart from image.
    expect(spec.image).toEqual({ uri: 'registry.example.com:5000/team/app:1' });
  });

  it('when an operator template is given, then it is merged under the pod and what Tidebox sets wins', () => {
    const template = {
      metadata: { labels: { pool: 'sandboxes' }, annotations: { 'example.com/a': 'b' } },
      spec: {
        runtimeClassName: 'gvisor',
        nodeSelector: { 'node-role': 'sandbox' },
        tolerations: [{ key: 'sandbox', operator: 'Exists', effect: 'NoSchedule' }],
        restartPolicy: 'Always',
        containers: [{ name: 'sandbox', stdin: true, securityContext: { runAsUser: 1000, allowPrivilegeEscalation: true } }],
      },
    };
    const pod = buildPod(id, specOf({}), { ...settings, template });
    expect(pod.spec).toMatchObject({
      runtimeClassName: 'gvisor',
      nodeSelector: { 'node-role': 'sandbox' },
      tolerations: template.spec.tolerations,
      restartPolicy: 'Never',
    });
    expect(pod.metadata!.labels!.pool).toBe('sandboxes');
    expect(pod.metadata!.labels!['tidebox.io/sandbox-id']).toBe(id.sandboxId);
    expect(pod.spec!.containers).toHaveLength(1);
    expect(pod.spec!.containers[0]).toMatchObject({
      stdin: true,
      image: 'busybox:1.36',
      securityContext: { runAsUser: 1000, allowPrivilegeEscalation: false },
    });
  });

  it('when lists are merged, then named items merge by name and others are replaced', () => {
    expect(deepMerge({ a: [1, 2], b: { c: 1 } }, { a: [3], b: { d: 2 } })).toEqual({ a: [3], b: { c: 1, d: 2 } });
    expect(deepMerge([{ name: 'x', v: 1 }, { name: 'y' }], [{ name: 'x', w: 2 }, { name: 'z' }])).toEqual([
      { name: 'x', v: 1, w: 2 },
      { name: 'y' },
      { name: 'z' },
    ]);
  });

  it.each([
    ['busybox', 'https://index.docker.io/v1/'],
    ['library/busybox:1', 'https://index.docker.io/v1/'],
    ['ghcr.io/org/img:1', 'ghcr.io'],
    ['localhost/img', 'localhost'],
    ['127.0.0.1:5000/img', '127.0.0.1:5000'],
  ])('when the image is %s, then its registry is %s', (image, registry) => expect(registryOf(image)).toBe(registry));

  it('when a claim is made on request, then it has the configured size, class and access modes', () => {
    expect(buildClaim('ns', 'data', 'tidebox', 'sb', { size: '5Gi', storageClass: 'fast', accessModes: ['ReadWriteMany'] }).spec).toEqual({
      accessModes: ['ReadWriteMany'],
      resources: { requests: { storage: '5Gi' } },
      storageClassName: 'fast',
    });
  });
});

describe('requests on the Kubernetes runtime', () => {
  it('when an ossfs volume is asked for, then 400 UNSUPPORTED names the runtime', () => {
    expect(() =>
      specOf({
        volumes: [
          { name: 'b', mountPath: '/b', ossfs: { bucket: 'bkt', endpoint: 'oss.example.com', accessKeyId: 'a', accessKeySecret: 'b' } },
        ],
      }),
    ).toThrow(/not supported on the Kubernetes runtime/);
  });
  it('when image.auth comes without payload encryption or on Docker, then it is refused', () => {
    const auth = { image: { uri: 'x', auth: { username: 'u', password: 'p' } } };
    expect(() => specOf(auth, { payloadsEncrypted: false })).toThrow(/security.payloadKey/);
    expect(() => specOf(auth, { runtime: 'docker' })).toThrow(/only on the Kubernetes runtime/);
  });
  it('when gpu is asked for, then Kubernetes takes whole GPUs and Docker refuses', () => {
    expect(specOf({ resourceLimits: { gpu: '2' } }).resources.gpu).toBe(2);
    expect(() => specOf({ resourceLimits: { gpu: 'lots' } })).toThrow(/whole number/);
    expect(() => specOf({ resourceLimits: { gpu: '1' } }, { runtime: 'docker' })).toThrow(/not supported on this runtime/);
  });
  it('when a pvc asks for size, class and access modes, then a claim made for it uses them (Docker ignores them); bad ones are refused', () => {
    const pvc = { claimName: 'big', storage: '100Gi', storageClass: 'fast-ssd', accessModes: ['ReadWriteMany'] };
    const volume = (p: object) => ({ volumes: [{ name: 'w', mountPath: '/w', pvc: p }] });
    expect(specOf(volume(pvc)).pvcs![0]!.claim).toEqual({ storage: '100Gi', storageClass: 'fast-ssd', accessModes: ['ReadWriteMany'] });
    expect(specOf(volume({ claimName: 'big', storage: null })).pvcs![0]).not.toHaveProperty('claim');
    expect(specOf(volume(pvc), { runtime: 'docker' }).pvcs![0]).not.toHaveProperty('claim');
    expect(() => schema.parse({ image: { uri: 'x' }, entrypoint: ['sh'], ...volume({ ...pvc, accessModes: ['Everyone'] }) })).toThrow();
    expect(() => schema.parse({ image: { uri: 'x' }, entrypoint: ['sh'], ...volume({ ...pvc, storage: 'huge' }) })).toThrow(/quantity/);
  });
});

describe('pod status with an operator sidecar', () => {
  it('when the template adds a container, then an image error names the sandbox image', () => {
    const p: V1Pod = {
      spec: {
        containers: [
          { name: 'proxy', image: 'envoy:1' },
          { name: 'sandbox', image: 'app:2' },
        ],
      },
      status: {
        phase: 'Pending',
        containerStatuses: [
          {
            name: 'sandbox',
            image: 'app:2',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { waiting: { reason: 'InvalidImageName' } },
          },
        ],
      },
    };
    expect(podProgress(p)).toMatchObject({
      kind: 'failed',
      code: 'IMAGE_UNAVAILABLE',
      message: 'image app:2 cannot be pulled: InvalidImageName',
    });
  });
});

describe('pod status → sandbox progress', () => {
  const pod = (status: V1Pod['status'], nodeName?: string): V1Pod => ({
    spec: { containers: [{ name: 'sandbox', image: 'img:1' }], ...(nodeName ? { nodeName } : {}) },
    status,
  });
  const container = (state: object) => ({
    containerStatuses: [{ name: 'sandbox', image: 'img:1', imageID: '', ready: true, restartCount: 0, state }],
  });

  it('when the pod runs with an IP, then it is running', () => {
    expect(podProgress(pod({ phase: 'Running', podIP: '10.1.2.3', ...container({ running: {} }) }))).toEqual({
      kind: 'running',
      podIP: '10.1.2.3',
    });
  });
  it('when Running but the container is not running yet, then it is pending with the kubelet reason (no node names: tenants read it)', () => {
    expect(
      podProgress(pod({ phase: 'Running', podIP: '10.1.2.3', ...container({ waiting: { reason: 'ContainerCreating' } }) }, 'node-7')),
    ).toEqual({
      kind: 'pending',
      reason: 'ContainerCreating',
      message: 'ContainerCreating',
      named: true,
    });
  });
  it('when the image cannot be pulled, then it failed with IMAGE_UNAVAILABLE and the kubelet message', () => {
    expect(
      podProgress(
        pod({ phase: 'Pending', ...container({ waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "img:1"' } }) }),
      ),
    ).toEqual({
      kind: 'failed',
      code: 'IMAGE_UNAVAILABLE',
      reason: 'ImagePullBackOff',
      message: 'image img:1 cannot be pulled: ImagePullBackOff: Back-off pulling image "img:1"',
    });
  });
  it('when the first pull fails, then it is pending (the kubelet retries); its back-off fails the sandbox', () => {
    expect(podProgress(pod({ phase: 'Pending', ...container({ waiting: { reason: 'ErrImagePull', message: 'rate limited' } }) }))).toEqual({
      kind: 'pending',
      reason: 'ErrImagePull',
      message: 'rate limited',
      named: true,
    });
  });
  it('when the pod cannot be scheduled, then it is pending with the scheduler reason', () => {
    const p = pod({
      phase: 'Pending',
      conditions: [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: insufficient nvidia.com/gpu' },
      ],
    });
    expect(podProgress(p)).toEqual({
      kind: 'pending',
      reason: 'Unschedulable',
      message: '0/3 nodes are available: insufficient nvidia.com/gpu',
      named: true,
    });
  });
  it('when the container terminated or the pod failed (evicted), then it failed with the exit code and reason', () => {
    expect(podProgress(pod({ phase: 'Failed', ...container({ terminated: { exitCode: 137, reason: 'OOMKilled' } }) }))).toMatchObject({
      kind: 'failed',
      code: 'CONTAINER_EXITED',
      exitCode: 137,
      reason: 'OOMKilled',
    });
    expect(podProgress(pod({ phase: 'Failed', reason: 'Evicted', message: 'low on memory' }))).toMatchObject({
      kind: 'failed',
      reason: 'Evicted',
      message: 'pod Failed: Evicted: low on memory',
    });
  });
  it('when a pod has no status yet, then it is pending waiting to be scheduled', () => {
    expect(podProgress(pod(undefined))).toEqual({ kind: 'pending', reason: 'Pending', message: 'waiting to be scheduled', named: false });
    expect(podProgress(pod({ phase: 'Pending' }, 'node-7'))).toEqual({
      kind: 'pending',
      reason: 'Pending',
      message: 'scheduled, starting',
      named: false,
    });
  });
});

describe('a warm pool member handed over', () => {
  const member = {
    metadata: {
      labels: { 'tidebox.io/sandbox-id': 's1', 'tidebox.io/tenant': 'acme', 'tidebox.io/pool': 'kp', 'metadata.tidebox.io/old': 'x' },
      annotations: { 'tidebox.io/metadata': '{}', 'tidebox.io/pool': 'pool/acme/kp' },
    },
  };
  const id = { sandboxId: 's1', tenant: 'acme', namespace: 'team-acme' };

  it("when a claim adopts a member, then the patch drops the pool's label and annotation and adds the sandbox's metadata", () => {
    expect(adoptionPatch(member, id, 'tidebox', { team: 'blue', 'not a label': 'kept in the annotation' })).toEqual([
      { op: 'add', path: '/metadata/labels/metadata.tidebox.io~1team', value: 'blue' },
      { op: 'add', path: '/metadata/labels/tidebox.io~1managed', value: 'true' },
      { op: 'add', path: '/metadata/labels/tidebox.io~1instance', value: 'tidebox' },
      { op: 'remove', path: '/metadata/labels/tidebox.io~1pool' },
      { op: 'remove', path: '/metadata/annotations/tidebox.io~1pool' },
      { op: 'add', path: '/metadata/annotations/tidebox.io~1metadata', value: '{"team":"blue","not a label":"kept in the annotation"}' },
    ]);
  });

  it('when the adoption is retried after its patch applied, then the patch removes nothing that is already gone', () => {
    const handed = {
      metadata: {
        labels: {
          'tidebox.io/sandbox-id': 's1',
          'tidebox.io/tenant': 'acme',
          'tidebox.io/managed': 'true',
          'tidebox.io/instance': 'tidebox',
        },
        annotations: { 'tidebox.io/metadata': '{}' },
      },
    };
    expect(adoptionPatch(handed, id, 'tidebox', {})).toEqual([
      { op: 'add', path: '/metadata/annotations/tidebox.io~1metadata', value: '{}' },
    ]);
  });
});
