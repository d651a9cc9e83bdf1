/**
 * A real kube-apiserver (+ etcd) on 127.0.0.1 for tests, started by scripts/k8s-test-cluster, and a
 * stand-in kubelet: with no nodes, tests play the kubelet by patching pod status through the
 * status subresource. Nothing here dials a pod or service address; tests assert on API objects.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { repoRoot } from './stack';

const run = promisify(execFile);

export interface KubeResult {
  status: number;
  body: any;
}

export class KubeTestCluster {
  readonly stateDir = mkdtempSync(join(tmpdir(), 'tidebox-k8s-'));
  kubeconfig = '';
  private server = '';
  private token = '';
  private ca = '';

  static async start(): Promise<KubeTestCluster> {
    const cluster = new KubeTestCluster();
    try {
      await run('bash', [join(repoRoot(), 'scripts/k8s-test-cluster'), 'start', cluster.stateDir], {
        timeout: 300_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    const info = JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as {
      server: string;
      token: string;
      caFile: string;
      kubeconfig: string;
    };
    cluster.server = info.server;
    cluster.token = info.token;
    cluster.ca = readFileSync(info.caFile, 'utf8');
    cluster.kubeconfig = info.kubeconfig;
    return cluster;
  }

  async stop(): Promise<void> {
    await run('bash', [join(repoRoot(), 'scripts/k8s-test-cluster'), 'stop', this.stateDir], { timeout: 60_000 }).catch(() => undefined);
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeResult> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${this.server}${path}`,
        {
          method,
          ca: this.ca,
          headers: {
            authorization: `Bearer ${this.token}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
          },
          timeout: 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Create every object of a manifest file (YAML, several documents), as `kubectl create -f` would. */
  async apply(file: string): Promise<Array<{ kind: string; name: string }>> {
    const made: Array<{ kind: string; name: string }> = [];
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const obj = doc.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } | null;
      if (!obj) continue;
      const r = await this.request('POST', collectionPath(obj), obj);
      if (r.status !== 201 && r.status !== 409)
        throw new Error(`creating ${obj.kind} ${obj.metadata.name}: ${r.status} ${JSON.stringify(r.body)}`);
      made.push({ kind: obj.kind, name: obj.metadata.name });
    }
    return made;
  }

  /** A kubeconfig that authenticates as a service account (a bound token from the TokenRequest API). */
  async kubeconfigForServiceAccount(namespace: string, name: string, path: string): Promise<string> {
    const r = await this.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 86_400 },
    });
    if (r.status !== 201) throw new Error(`token for ${namespace}/${name}: ${r.status} ${JSON.stringify(r.body)}`);
    writeFileSync(
      path,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'test', cluster: { server: this.server, 'certificate-authority-data': Buffer.from(this.ca).toString('base64') } },
        ],
        users: [{ name, user: { token: r.body.status.token } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: name } }],
        'current-context': 'test',
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /** May `user` do `verb` on `resource` (in `namespace`)? Asked of the API server's RBAC authorizer. */
  async can(user: string, verb: string, resource: string, namespace?: string, subresource?: string): Promise<boolean> {
    const r = await this.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user,
        groups: ['system:serviceaccounts', 'system:authenticated'],
        resourceAttributes: { verb, resource, ...(subresource ? { subresource } : {}), ...(namespace ? { namespace } : {}) },
      },
    });
    if (r.status !== 201) throw new Error(`access review: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.status.allowed === true;
  }

  async createNamespace(name: string): Promise<void> {
    const r = await this.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    if (r.status !== 201 && r.status !== 409) throw new Error(`creating namespace ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** Sandbox pods of a stack (every namespace), optionally of one sandbox. */
  async pods(instance: string, sandboxId?: string): Promise<any[]> {
    const selector = encodeURIComponent(`tidebox.io/instance=${instance}${sandboxId ? `,tidebox.io/sandbox-id=${sandboxId}` : ''}`);
    const r = await this.request('GET', `/api/v1/pods?labelSelector=${selector}`);
    if (r.status !== 200) throw new Error(`listing pods: ${r.status}`);
    return r.body.items;
  }

  async get(path: string): Promise<KubeResult> {
    return this.request('GET', path);
  }

  /** The collection's current resourceVersion: a point in the cluster's history to watch from. */
  async resourceVersion(path: string): Promise<string> {
    const r = await this.request('GET', path);
    if (r.status !== 200) throw new Error(`listing ${path}: ${r.status}`);
    return r.body.metadata.resourceVersion;
  }

  /**
   * The watch events of a collection since `resourceVersion`: a watch the API server ends after one
   * second, read whole (newline-delimited JSON).
   */
  async eventsSince(path: string, resourceVersion: string): Promise<Array<{ type: string; object: any }>> {
    const r = await this.request('GET', `${path}?watch=1&resourceVersion=${resourceVersion}&timeoutSeconds=1`);
    if (r.status !== 200) throw new Error(`watching ${path}: ${r.status}`);
    const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    return text
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line));
  }

  /** Merge-patch a pod's status (what a kubelet reports). */
  async patchPodStatus(namespace: string, name: string, status: object): Promise<KubeResult> {
    return this.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, { status }, 'application/merge-patch+json');
  }
}

const PLURALS: Record<string, string> = {
  Namespace: 'namespaces',
  ServiceAccount: 'serviceaccounts',
  ConfigMap: 'configmaps',
  Secret: 'secrets',
  Service: 'services',
  Deployment: 'deployments',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
};

function collectionPath(obj: { apiVersion: string; kind: string; metadata: { namespace?: string } }): string {
  const plural = PLURALS[obj.kind];
  if (!plural) throw new Error(`no REST path known for kind ${obj.kind}`);
  const base = obj.apiVersion === 'v1' ? '/api/v1' : `/apis/${obj.apiVersion}`;
  return obj.metadata.namespace ? `${base}/namespaces/${obj.metadata.namespace}/${plural}` : `${base}/${plural}`;
}

/** What the stand-in kubelet does with a new pod, chosen by its image. */
export type KubeletBehaviour = 'run' | 'unschedulable' | 'image-pull-error' | 'hold';

const now = () => new Date().toISOString();

/**
 * Watches (polls) a stack's pods and moves each new one along like a kubelet would: Running with a
 * pod IP by default; per image, unschedulable, an image pull error, or left Pending. Pod IPs are
 * from the documentation range 192.0.2.0/24 and are never dialed.
 */
export class FakeKubelet {
  private readonly behaviours = new Map<string, KubeletBehaviour>();
  private readonly done = new Set<string>();
  private timer?: NodeJS.Timeout;
  private running = false;
  private nextIp = 10;
  patched = 0;

  constructor(
    private readonly cluster: KubeTestCluster,
    private readonly instance: string,
  ) {}

  behave(image: string, behaviour: KubeletBehaviour): void {
    this.behaviours.set(image, behaviour);
  }

  start(intervalMs = 100): void {
    this.timer = setInterval(() => void this.tick().catch(() => undefined), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const pod of await this.cluster.pods(this.instance)) {
        const uid: string = pod.metadata.uid;
        if (this.done.has(uid) || pod.metadata.deletionTimestamp) continue;
        const image: string = pod.spec.containers[0].image;
        const behaviour = this.behaviours.get(image) ?? 'run';
        if (behaviour === 'hold') continue;
        const status = statusFor(behaviour, image, `192.0.2.${this.nextIp}`);
        const r = await this.cluster.patchPodStatus(pod.metadata.namespace, pod.metadata.name, status);
        if (r.status === 200) {
          this.done.add(uid);
          this.patched++;
          if (behaviour === 'run') this.nextIp = this.nextIp >= 250 ? 10 : this.nextIp + 1;
        }
      }
    } finally {
      this.running = false;
    }
  }
}

function statusFor(behaviour: KubeletBehaviour, image: string, podIP: string): object {
  const container = (state: object, ready: boolean) => ({
    containerStatuses: [{ name: 'sandbox', image, imageID: '', ready, restartCount: 0, started: ready, state }],
  });
  switch (behaviour) {
    case 'unschedulable':
      return {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.',
            lastTransitionTime: now(),
          },
        ],
      };
    case 'image-pull-error':
      return {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now() }],
        ...container({ waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } }, false),
      };
    default:
      return {
        phase: 'Running',
        podIP,
        podIPs: [{ ip: podIP }],
        hostIP: '192.0.2.1',
        startTime: now(),
        conditions: [
          { type: 'PodScheduled', status: 'True', lastTransitionTime: now() },
          { type: 'Ready', status: 'True', lastTransitionTime: now() },
        ],
        ...container({ running: { startedAt: now() } }, true),
      };
  }
}
