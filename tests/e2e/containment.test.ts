import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { BindPins, mountPoints } from '../../activities/docker/bind-pins';
import { LABELS } from '../../contracts/labels';
import { payloadCodecsFor } from '../../platform/payload-codec';
import { SANDBOX_WORKFLOW_TYPE } from '../../contracts/sandbox-actor';
import { repoRoot, sandboxRequest, Stack, waitFor, writeTenantsFile } from '../helpers/stack';

/**
 * Containment on the real pieces, two tenants on one Docker host: each tenant's sandboxes on a network
 * of their own (a sandbox reaches its own tenant's other sandbox, never the other tenant's), the
 * host's egress guard read back from iptables and put back after a worker restart and after someone
 * removes it, image references that would reach other tenants' images refused, and an actor that
 * stays bounded under thousands of metadata patches.
 *
 * Network probes go only to containers this test made. The guard's rules for link-local, private
 * ranges and the host itself are verified by reading them, never by sending traffic there.
 */
const KEY_A = 'acme-key-0123456789abcdef';
const KEY_B = 'globex-key-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'tidebox-test-containment-'));
const tenantsFile = join(dir, 'tenants.toml');
const storage = join(dir, 'storage');
const PAYLOAD_KEY = randomBytes(32).toString('base64');

let stack: Stack;
beforeAll(async () => {
  mkdirSync(storage, { recursive: true });
  writeTenantsFile(tenantsFile, { acme: KEY_A, globex: KEY_B });
  stack = await Stack.start({
    config: {
      tenants: { provider: 'file', file: tenantsFile },
      network: { reconcileSeconds: 1 },
      security: { payloadKey: PAYLOAD_KEY },
      sandbox: { allowedHostPaths: [storage] },
    },
  });
});
afterAll(async () => {
  await stack?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const as = (key: string) => (method: string, path: string, body?: unknown) => stack.as(key)(method, path, body);
const A = as(KEY_A);
const B = as(KEY_B);

function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}
const rules = async (chain: string) => (await sh('iptables', ['-S', chain])).out;

/** An httpd sandbox of a tenant; its id and its address on its tenant network. */
async function server(req: typeof A): Promise<{ id: string; ip: string; network: string }> {
  const r = await req('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['httpd', '-f', '-p', '8080', '-h', '/'] }));
  expect(r.body.status.state).toBe('Running');
  const [info] = await stack.containers(r.body.id);
  const networks = (await stack.docker.getContainer(info!.Id).inspect()).NetworkSettings.Networks;
  const [network, settings] = Object.entries(networks)[0]!;
  // The create answers once the container runs, maybe before httpd listens: wait for it from inside.
  await waitFor('httpd to listen', async () => (await connectFrom(r.body.id, settings.IPAddress, 8080)) === 0, 10_000, 100);
  return { id: r.body.id, ip: settings.IPAddress, network };
}

/** Exit code of a TCP connect from inside a sandbox's container to ip:port (0 = connected). */
async function connectFrom(sandboxId: string, ip: string, port: number): Promise<number> {
  const [info] = await stack.containers(sandboxId);
  const exec = await stack.docker.getContainer(info!.Id).exec({ Cmd: ['nc', '-w', '3', ip, String(port), '-e', 'true'] });
  await exec.start({ Detach: true });
  return waitFor(
    'the probe to finish',
    async () => {
      const r = await exec.inspect();
      return r.Running ? undefined : (r.ExitCode ?? -1);
    },
    15_000,
    50,
  );
}

describe('networks per tenant and the egress guard', () => {
  it("when two tenants run sandboxes, then each tenant has a network of its own and a sandbox reaches its own tenant's other sandbox but never the other tenant's", async () => {
    const [a1, a2, b1] = [await server(A), await server(A), await server(B)];
    expect(a1.network).toBe(`tidebox-${stack.instance}-acme`);
    expect(a2.network).toBe(a1.network);
    expect(b1.network).toBe(`tidebox-${stack.instance}-globex`);
    const bridge = (await stack.docker.getNetwork(a1.network).inspect()).Options?.['com.docker.network.bridge.name'];
    expect(bridge).toMatch(/^tbx[0-9a-f]{12}$/);

    expect(await connectFrom(a1.id, a2.ip, 8080)).toBe(0); // own tenant: reachable
    expect(await connectFrom(b1.id, b1.ip, 8080)).toBe(0); // B's server is up
    expect(await connectFrom(a1.id, b1.ip, 8080)).not.toBe(0); // other tenant: not
    expect(await connectFrom(b1.id, a1.ip, 8080)).not.toBe(0);
    for (const s of [a1, a2]) expect((await A('DELETE', `/v1/sandboxes/${s.id}`)).status).toBe(204);
    expect((await B('DELETE', `/v1/sandboxes/${b1.id}`)).status).toBe(204);
  });

  it('when the guard is read back, then sandbox bridges are sent through it, and it refuses link-local, the deny list and every port of the host', async () => {
    expect(await rules('DOCKER-USER')).toContain('-A DOCKER-USER -i tbx+ -j TIDEBOX-EGRESS');
    expect(await rules('INPUT')).toContain('-A INPUT -i tbx+ -j TIDEBOX-INPUT');
    const egress = await rules('TIDEBOX-EGRESS');
    for (const cidr of ['169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'])
      expect(egress).toContain(`-A TIDEBOX-EGRESS -d ${cidr} -j REJECT`);
    expect(await rules('TIDEBOX-INPUT')).toMatch(/-A TIDEBOX-INPUT -j REJECT/);
  });

  it('when the worker restarts, or someone removes the jumps and empties the chain, then the guard is whole again', async () => {
    await stack.worker.stop();
    stack.startWorker();
    const starts = () => (readFileSync(join(stack.dataDir, 'worker.log'), 'utf8').match(/"worker started"/g) ?? []).length;
    await waitFor('the worker to be back', () => starts() >= 2, 60_000, 200);
    expect(await rules('DOCKER-USER')).toContain('-j TIDEBOX-EGRESS');

    await sh('iptables', ['-D', 'DOCKER-USER', '-i', 'tbx+', '-j', 'TIDEBOX-EGRESS']);
    await sh('iptables', ['-D', 'INPUT', '-i', 'tbx+', '-j', 'TIDEBOX-INPUT']);
    await sh('iptables', ['-F', 'TIDEBOX-EGRESS']);
    await waitFor(
      'the worker to put the guard back',
      async () =>
        (await rules('DOCKER-USER')).includes('-j TIDEBOX-EGRESS') &&
        (await rules('INPUT')).includes('-j TIDEBOX-INPUT') &&
        (await rules('TIDEBOX-EGRESS')).includes('169.254.0.0/16'),
      15_000,
      200,
    );
  });

  it('when a tenant has no sandbox left, then its network goes within two checks', async () => {
    const label = `${LABELS.instance}=${stack.instance}`;
    await waitFor(
      'idle tenant networks to be removed',
      async () => (await stack.docker.listNetworks({ filters: { label: [label] } })).length === 0,
      20_000,
      250,
    );
  });
});

describe('the guard across a Docker engine restart', () => {
  /** Restart the engine the way it runs here: systemd's unit, or the same command line, detached (as bootstrap starts it). */
  async function restartDockerd(): Promise<void> {
    if ((await sh('systemctl', ['is-active', '--quiet', 'docker'])).code === 0) {
      await sh('systemctl', ['restart', 'docker']);
    } else {
      const pid = Number((await sh('pidof', ['dockerd'])).out.trim().split(/\s+/)[0]);
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      process.kill(pid, 'SIGTERM');
      // Exited, or a zombie: a dockerd that bootstrap started is a child of this test run, which never reaps it.
      const exited = () => {
        try {
          return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
        } catch {
          return true;
        }
      };
      await waitFor('dockerd to exit', exited, 60_000, 200);
      mkdirSync(join(repoRoot(), '.tidebox', 'logs'), { recursive: true });
      const log = openSync(join(repoRoot(), '.tidebox', 'logs', 'dockerd.log'), 'a');
      spawn(args[0]!, args.slice(1), { cwd: '/', detached: true, stdio: ['ignore', log, log] }).unref();
    }
    await waitFor('dockerd to answer', async () => (await sh('docker', ['info'])).code === 0, 90_000, 500);
  }

  it('when dockerd restarts, then the guard and the tenant network are still in place, and a new sandbox is contained as before', async () => {
    const before = await server(A);
    await restartDockerd();
    expect(await rules('DOCKER-USER')).toContain('-A DOCKER-USER -i tbx+ -j TIDEBOX-EGRESS');
    expect(await rules('INPUT')).toContain('-A INPUT -i tbx+ -j TIDEBOX-INPUT');
    expect(await rules('TIDEBOX-EGRESS')).toContain('-d 169.254.0.0/16 -j REJECT');
    const after = await waitFor(
      'a sandbox to start on the restarted engine',
      async () => {
        const r = await A('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['httpd', '-f', '-p', '8080', '-h', '/'] }));
        return r.body?.status?.state === 'Running' ? (r.body.id as string) : undefined;
      },
      60_000,
      1000,
    );
    const [info] = await stack.containers(after);
    const networks = (await stack.docker.getContainer(info!.Id).inspect()).NetworkSettings.Networks;
    expect(Object.keys(networks)).toEqual([before.network]);
    const bridge = (await stack.docker.getNetwork(before.network).inspect()).Options?.['com.docker.network.bridge.name'];
    expect(bridge).toMatch(/^tbx[0-9a-f]{12}$/);
    for (const id of [before.id, after]) await A('DELETE', `/v1/sandboxes/${id}`);
  }, 300_000);
});

describe('images another tenant made', () => {
  it("when tenant B names A's snapshot image, an image-ID prefix or a bare digest, then 400 and nothing is created; A restores by snapshotId", async () => {
    const source = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id as string;
    const snapshot = (await A('POST', `/v1/sandboxes/${source}/snapshots`, {})).body;
    const ready = await waitFor(
      'the snapshot to be Ready',
      async () => {
        const r = await A('GET', `/v1/snapshots/${snapshot.id}`);
        return r.body.status.state === 'Ready' ? r.body : undefined;
      },
      60_000,
      200,
    );
    const imageId: string = (await stack.docker.getImage(ready.image).inspect()).Id; // sha256:<hex>
    const before = (await stack.containers()).length;
    for (const uri of [ready.image, `docker.io/library/${ready.image}`, imageId.slice(7, 19), imageId.slice(7), imageId]) {
      const r = await B('POST', '/v1/sandboxes', sandboxRequest({ image: { uri } }));
      expect({ uri, status: r.status, code: r.body.code }).toEqual({ uri, status: 400, code: 'SANDBOX::INVALID_PARAMETER' });
    }
    // B cannot restore A's snapshot by id either (404, as for any foreign id).
    expect((await B('POST', '/v1/sandboxes', { snapshotId: snapshot.id, timeout: 600 })).status).toBe(404);
    expect((await stack.containers()).length).toBe(before);

    const restored = await A('POST', '/v1/sandboxes', {
      snapshotId: snapshot.id,
      timeout: 600,
      resourceLimits: { cpu: '250m', memory: '64Mi' },
    });
    expect(restored.body.status.state).toBe('Running');
    for (const id of [restored.body.id, source]) expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect((await A('DELETE', `/v1/snapshots/${snapshot.id}`)).status).toBe(204);
  });
});

describe('bounded actors', () => {
  it('when a sandbox takes 3,000 metadata patches, then its actor continues as new (history bounded) and GET, renew and DELETE still work', async () => {
    const id = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id as string;
    const firstRun = (await A('GET', `/v1/workflows/sandbox/${id}`)).body.runId;
    const PATCHES = 3000;
    for (let i = 0; i < PATCHES; i += 10) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, j) => A('PATCH', `/v1/sandboxes/${id}/metadata`, { n: String(i + j) })),
      );
      expect(answers.map((r) => r.status).filter((s) => s !== 200)).toEqual([]);
    }
    const status = (await A('GET', `/v1/workflows/sandbox/${id}`)).body;
    expect(status.runId).not.toBe(firstRun);
    expect(status.historyLength).toBeLessThan(2500);
    const got = await A('GET', `/v1/sandboxes/${id}`);
    expect(got.body.status.state).toBe('Running');
    expect(Number(got.body.metadata.n)).toBeGreaterThanOrEqual(PATCHES - 10);
    const renewed = await A('POST', `/v1/sandboxes/${id}/renew-expiration`, { expiresAt: new Date(Date.now() + 3600_000).toISOString() });
    expect(renewed.status).toBe(200);
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);
  }, 600_000);

  it('when a sandbox has a long entrypoint, then its memo leaves it out (the memo stays small) and GET and LIST still show all of it', async () => {
    const entrypoint = ['sh', '-c', `: ${'x'.repeat(6000)}; exec tail -f /dev/null`];
    const created = await A('POST', '/v1/sandboxes', sandboxRequest({ entrypoint, metadata: { long: 'entrypoint' } }));
    expect(created.body.status.state).toBe('Running');
    const id = created.body.id as string;
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      const described = await new Client({ connection, dataConverter: payloadCodecsFor(PAYLOAD_KEY) }).workflow
        .getHandle(`sandbox/${id}`)
        .describe();
      expect(described.memo?.view).toMatchObject({ entrypoint: [], entrypointElided: true });
      expect(JSON.stringify(described.memo).length).toBeLessThan(4096);
    } finally {
      await connection.close();
    }
    expect((await A('GET', `/v1/sandboxes/${id}`)).body.entrypoint).toEqual(entrypoint);
    const listed = (await A('GET', '/v1/sandboxes?metadata=long%3Dentrypoint')).body.items;
    expect(listed.map((v: { entrypoint: string[] }) => v.entrypoint)).toEqual([entrypoint]);
    expect(listed[0]).not.toHaveProperty('entrypointElided');
    expect((await A('GET', `/v1/sandboxes/${id}/events`)).body.state).toBe('Running');
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('the orphan sweep', () => {
  it('when a container of this install has no live actor (made by hand, or left by a terminated actor), then it is removed within a sweep; live sandboxes stay', async () => {
    const live = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id as string;
    const byHand = await stack.docker.createContainer({
      Image: 'tidebox/busybox:latest',
      Cmd: ['tail', '-f', '/dev/null'],
      Labels: {
        [LABELS.managed]: 'true',
        [LABELS.instance]: stack.instance,
        [LABELS.sandboxId]: `orphan-${randomBytes(4).toString('hex')}`,
      },
    });
    await byHand.start();
    const left = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id as string;
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      await new Client({ connection }).workflow.getHandle(`sandbox/${left}`).terminate('an operator ended the actor by hand');
    } finally {
      await connection.close();
    }
    const gone = async (id: string) => {
      try {
        await stack.docker.getContainer(id).inspect();
        return false;
      } catch {
        return true;
      }
    };
    await waitFor('the hand-made container to be reaped', () => gone(byHand.id), 20_000, 250);
    await waitFor("the terminated actor's container to be reaped", async () => (await stack.containers(left)).length === 0, 20_000, 250);
    expect(await stack.containers(live)).toHaveLength(1);
    expect((await A('GET', `/v1/sandboxes/${live}`)).body.status.state).toBe('Running');
    expect((await A('DELETE', `/v1/sandboxes/${live}`)).status).toBe(204);
  });

  it('when a worker crashed between pinning a host volume and starting its container, then the sweep releases the pin', async () => {
    const pins = new BindPins(join(stack.dataDir, 'binds'));
    const crashed = `crashed-${randomBytes(4).toString('hex')}`;
    mkdirSync(join(storage, 'left'), { recursive: true });
    const pin = await pins.pin(crashed, 0, 'home', join(storage, 'left'), [storage], false);
    const past = new Date(Date.now() - 3600_000);
    utimesSync(join(stack.dataDir, 'binds', crashed), past, past);
    // Released: unmounted, then its directory removed (a moment later: the test waits for both).
    await waitFor(
      'the sweep to release the pin',
      () => !mountPoints().has(pin.path) && !pins.sandboxes().some((p) => p.sandboxId === crashed),
      20_000,
      250,
    );
    // The sweep logs once it has released everything it found: the line may follow the unmount by a moment.
    await waitFor('the sweep to log the release', () =>
      readFileSync(join(stack.dataDir, 'worker.log'), 'utf8').includes('released host-volume pins no starting container needs'),
    );
  });
});

describe('the control plane trusts only encrypted payloads', () => {
  it('when someone who reaches Temporal without the payload key sends an Update or starts a sandbox workflow, then it is refused and nothing changes', async () => {
    const id = (await A('POST', '/v1/sandboxes', sandboxRequest())).body.id as string;
    const connection = await Connection.connect({ address: stack.temporal.address });
    const forger = new Client({ connection }); // no payload codec: plaintext payloads
    try {
      // A forged delete (and a forged patch) of a live sandbox: refused, the sandbox runs on.
      const handle = forger.workflow.getHandle(`sandbox/${id}`);
      for (const [name, args] of [
        ['delete', [{ waitMs: 1000 }]],
        ['patchMetadata', [{ owner: 'mallory' }]],
      ] as const) {
        await expect(forger.withDeadline(Date.now() + 10_000, () => handle.executeUpdate(name, { args: [...args] }))).rejects.toThrow();
      }
      const after = await A('GET', `/v1/sandboxes/${id}`);
      expect(after.body.status.state).toBe('Running');
      expect(after.body.metadata).toEqual({});
      expect(await stack.containers(id)).toHaveLength(1);
      // The actor is unharmed: a real request still works (once the server has dropped the forged
      // Updates, whose workflow tasks failed: until then it may answer 409 "retry it", as documented).
      await waitFor(
        'a real metadata patch to be accepted',
        async () => (await A('PATCH', `/v1/sandboxes/${id}/metadata`, { owner: 'acme' })).status === 200,
        20_000,
        500,
      );

      // A forged sandbox workflow: its input never decodes, so it never runs anything.
      const forgedId = `forged-${randomBytes(4).toString('hex')}`;
      const forged = await forger.workflow.start(SANDBOX_WORKFLOW_TYPE, {
        workflowId: `sandbox/${forgedId}`,
        taskQueue: 'tidebox',
        args: [{ sandboxId: forgedId, tenant: 'globex', spec: { image: { uri: 'tidebox/busybox:latest' } } }],
      });
      await waitFor(
        'the forged workflow to be refused by the worker',
        async () => ((await forged.fetchHistory()).events ?? []).some((event) => event.workflowTaskFailedEventAttributes),
        30_000,
        250,
      );
      expect(await stack.containers(forgedId)).toHaveLength(0);
      await forged.terminate('forged by the test');
    } finally {
      await connection.close();
      await A('DELETE', `/v1/sandboxes/${id}`);
    }
  });
});

describe('storage scope on the host that binds', () => {
  it("when a workflow input (even one encrypted with the key) binds another tenant's storage, then the worker refuses it and binds nothing", async () => {
    const legit = await A(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ volumes: [{ name: 'home', host: { path: storage }, subPath: 'work', mountPath: '/home' }] }),
    );
    expect(legit.body.status.state).toBe('Running');
    const acmeDir = `${storage}/acme/users/default/work`;
    writeFileSync(join(acmeDir, 'acme-only'), 'acme\n');
    expect((await stack.exec(legit.body.id, 'cat /home/acme-only')).output).toBe('acme\n');
    // Bound through a pin: writable, but nothing set-uid or device-like planted there takes effect.
    expect((await stack.exec(legit.body.id, "grep ' /home ' /proc/mounts")).output).toMatch(/ \/home \S+ rw,nosuid,nodev/);

    // globex's "actor", started with acme's area: as a compromised API or a key holder would forge it.
    const connection = await Connection.connect({ address: stack.temporal.address });
    const client = new Client({ connection, dataConverter: payloadCodecsFor(PAYLOAD_KEY) });
    const forgedId = `forged-${randomBytes(4).toString('hex')}`;
    const hostPath = acmeDir;
    try {
      await client.workflow.start(SANDBOX_WORKFLOW_TYPE, {
        workflowId: `sandbox/${forgedId}`,
        taskQueue: 'tidebox',
        args: [
          {
            sandboxId: forgedId,
            tenant: 'globex',
            namespace: 'globex',
            hostId: 'local',
            createdAt: new Date().toISOString(),
            requestHash: 'forged',
            spec: {
              image: { uri: 'tidebox/busybox:latest' },
              entrypoint: ['tail', '-f', '/dev/null'],
              env: {},
              metadata: {},
              extensions: {},
              timeoutSeconds: 600,
              resources: { cpuMillis: 250, memoryBytes: 64 * 2 ** 20 },
              volumes: [{ name: 'home', hostPath, scope: `${storage}/acme/users/default`, mountPath: '/home', readOnly: false }],
              ossfs: [],
              ports: [],
            },
          },
        ],
      });
      const failed = await waitFor(
        'the forged sandbox to fail',
        async () => {
          const r = await B('GET', `/v1/sandboxes/${forgedId}`);
          return r.body?.status?.state === 'Failed' ? r.body : undefined;
        },
        30_000,
        250,
      );
      expect(failed.status).toMatchObject({ reason: 'SANDBOX::RUNTIME_REJECTED' });
      expect(failed.status.message).toContain("is not in tenant globex's area");
      expect(await stack.containers(forgedId)).toHaveLength(0);
    } finally {
      await connection.close();
      await B('DELETE', `/v1/sandboxes/${forgedId}`);
      await A('DELETE', `/v1/sandboxes/${legit.body.id}`);
    }
  });
});
