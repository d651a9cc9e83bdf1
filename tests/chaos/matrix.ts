import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LABELS } from '../../contracts/labels';
import { FAULT_POINTS } from '../../core/config';
import { detachMounts, LocalS3, mountsUnder, ossfsStackConfig } from '../helpers/s3';
import { type HttpResult, sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';

/**
 * The crash matrix (issue #22): every saga step an activity can be caught in — the test-only fault
 * points of core/config.ts (FAULT_POINTS) — crossed with every fault: the worker SIGKILLed, the API
 * SIGKILLed, the Temporal server restarted, at the moment the step hangs there. Each cell drives its
 * saga through the real pieces with the client's own request in flight, makes the fault, lets the
 * step go on, and checks: the client's request was answered (retried where it could not be, with
 * its Idempotency-Key), the actor converged to what was asked, exactly the containers that should
 * exist do (`docker ps` by label), and after clean-up nothing is left: no container, FUSE mount,
 * snapshot image or extra network of the stack.
 */
export const FAULTS = ['worker-kill', 'api-kill', 'temporal-restart'] as const;
export type Fault = (typeof FAULTS)[number];
export type FaultPoint = (typeof FAULT_POINTS)[number];

interface World {
  stack: Stack;
  s3: LocalS3;
  mountRoot: string;
  /** The point the running worker hangs at (a cell whose fault spared the worker leaves it armed). */
  armed?: FaultPoint;
}

/** Restart the worker, hanging at `point` or nowhere. */
async function restartWorker(w: World, point?: FaultPoint): Promise<void> {
  await w.stack.worker.stop();
  w.stack.startWorker(point ? { TIDEBOX_FAULT_HANG_AT: point } : {});
  w.armed = point;
  await w.stack.workerReady();
}

/** What one saga run holds: its sandbox, and what it made beside (a source, a snapshot, a pool). */
interface Run {
  id?: string;
  source?: string;
  snapshot?: string;
  pool?: string;
  /** A tag in the request's metadata: how a client finds what a request made when its answer was lost. */
  tag: string;
}

interface Saga {
  /** The step it hangs in. */
  point: FaultPoint;
  /** What the step needs, made before the point is armed (a create on the way would hang there too). */
  prepare?(w: World, run: Run): Promise<void>;
  /** The client's request that drives the saga into the step. */
  request(w: World, run: Run): Promise<HttpResult>;
  /** Whether a request ended in an answer; false (a dropped connection, a 5xx): the client retries it. */
  answered(r: HttpResult): boolean;
  /** What is not (yet) as the client asked; undefined when converged. */
  pending(w: World, run: Run): Promise<string | undefined>;
}

const BUCKET = 'tidebox-chaos';
const POOL_TEMPLATE = {
  image: { uri: TEST_IMAGE },
  entrypoint: ['tail', '-f', '/dev/null'],
  resourceLimits: { cpu: '250m', memory: '64Mi' },
};

const stateOf = async (w: World, id: string) =>
  (await w.stack.request('GET', `/v1/sandboxes/${id}`)).body?.status?.state as string | undefined;

/** A sandbox made for a saga's preparation, Running. */
async function runningSandbox(w: World, overrides: Record<string, unknown> = {}): Promise<string> {
  const r = await w.stack.request('POST', '/v1/sandboxes', sandboxRequest(overrides));
  if (r.body?.status?.state !== 'Running') throw new Error(`preparation: create answered ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** The sandbox is in `state`, with exactly one container in `containerState`. */
async function sandboxIs(w: World, id: string | undefined, state: string, containerState: string): Promise<string | undefined> {
  if (!id) return 'no sandbox id yet';
  const s = await stateOf(w, id);
  if (s !== state) return `sandbox ${id} is ${s}, not ${state}`;
  const containers = await w.stack.containers(id);
  if (containers.length !== 1) return `sandbox ${id} has ${containers.length} containers, not 1`;
  return containers[0]!.State === containerState ? undefined : `its container is ${containers[0]!.State}, not ${containerState}`;
}

async function sandboxGone(w: World, id: string | undefined): Promise<string | undefined> {
  if (!id) return 'no sandbox id';
  const r = await w.stack.request('GET', `/v1/sandboxes/${id}`);
  if (r.status !== 404) return `GET answers ${r.status} (${r.body?.status?.state})`;
  const left = await w.stack.containers(id);
  return left.length ? `${left.length} containers left` : undefined;
}

const volume = (w: World) => ({
  name: 'data',
  mountPath: '/data',
  ossfs: {
    bucket: BUCKET,
    endpoint: w.s3.endpoint,
    version: '1.0',
    options: ['use_path_request_style'],
    accessKeyId: 'S3RVER',
    accessKeySecret: 'S3RVER',
  },
});

/** A create the client can repeat: the same body under the same Idempotency-Key yields the same sandbox. */
function idempotentCreate(body: (w: World, run: Run) => Record<string, unknown>) {
  return async (w: World, run: Run) => {
    const r = await w.stack.request('POST', '/v1/sandboxes', body(w, run), { 'Idempotency-Key': run.tag });
    if (r.status === 202) run.id = r.body.id;
    return r;
  };
}
const created = (r: HttpResult) => r.status === 202;
const deleted = (r: HttpResult) => r.status === 204 || r.status === 404;
/** Pause/resume answer 202 once accepted; a retry of an accepted one meets the sandbox in transition or done (409). */
const accepted = (r: HttpResult) => r.status === 202 || r.status === 409;
const tagged = (run: Run, extra: Record<string, unknown> = {}) => sandboxRequest({ metadata: { chaos: run.tag }, ...extra });

/**
 * One saga per step, and more where several sagas pass one step (delete and expiry both remove;
 * create and restore both create). Keyed by fault point first: a point added to core/config.ts
 * without a saga here does not compile.
 */
const BY_POINT: Record<FaultPoint, Record<string, Saga>> = {
  'container-created': {
    create: {
      point: 'container-created',
      request: idempotentCreate((_, run) => tagged(run)),
      answered: created,
      pending: (w, run) => sandboxIs(w, run.id, 'Running', 'running'),
    },
    restore: {
      point: 'container-created',
      async prepare(w, run) {
        run.source = await runningSandbox(w);
        const snap = await w.stack.request('POST', `/v1/sandboxes/${run.source}/snapshots`, {});
        run.snapshot = snap.body.id;
        await waitFor(
          'the snapshot to be Ready',
          async () => (await w.stack.request('GET', `/v1/snapshots/${run.snapshot}`)).body?.status?.state === 'Ready',
          60_000,
          200,
        );
      },
      request: idempotentCreate((_, run) => ({
        snapshotId: run.snapshot,
        timeout: 600,
        metadata: { chaos: run.tag },
        resourceLimits: { cpu: '250m', memory: '64Mi' },
      })),
      answered: created,
      pending: (w, run) => sandboxIs(w, run.id, 'Running', 'running'),
    },
  },
  'container-removing': {
    delete: {
      point: 'container-removing',
      prepare: async (w, run) => void (run.id = await runningSandbox(w)),
      request: (w, run) => w.stack.request('DELETE', `/v1/sandboxes/${run.id}`),
      answered: deleted,
      pending: (w, run) => sandboxGone(w, run.id),
    },
    // The create is the client's request; the expiry 3 s later is the saga.
    expire: {
      point: 'container-removing',
      request: idempotentCreate((_, run) => tagged(run, { timeout: 3 })),
      answered: created,
      pending: (w, run) => sandboxGone(w, run.id),
    },
  },
  'container-pausing': {
    pause: {
      point: 'container-pausing',
      prepare: async (w, run) => void (run.id = await runningSandbox(w)),
      request: (w, run) => w.stack.request('POST', `/v1/sandboxes/${run.id}/pause`),
      answered: accepted,
      pending: (w, run) => sandboxIs(w, run.id, 'Paused', 'paused'),
    },
  },
  'container-resuming': {
    resume: {
      point: 'container-resuming',
      async prepare(w, run) {
        run.id = await runningSandbox(w);
        await w.stack.request('POST', `/v1/sandboxes/${run.id}/pause`);
        await waitFor('Paused', async () => (await stateOf(w, run.id!)) === 'Paused', 30_000, 100);
      },
      request: (w, run) => w.stack.request('POST', `/v1/sandboxes/${run.id}/resume`),
      answered: accepted,
      pending: (w, run) => sandboxIs(w, run.id, 'Running', 'running'),
    },
  },
  'member-adopting': {
    claim: {
      point: 'member-adopting',
      async prepare(w, run) {
        run.pool = `chaos-${run.tag.slice(0, 8)}`;
        const made = await w.stack.request('POST', '/v1/pools', {
          name: run.pool,
          template: POOL_TEMPLATE,
          capacitySpec: { bufferMin: 1, bufferMax: 1, poolMin: 0, poolMax: 2 },
        });
        if (made.status !== 201) throw new Error(`preparation: pool create answered ${made.status}`);
        await waitFor(
          'a ready member',
          async () => (await w.stack.request('GET', `/v1/pools/${run.pool}`)).body?.status?.available === 1,
          60_000,
          200,
        );
      },
      request: idempotentCreate((_, run) => ({ timeout: 300, metadata: { chaos: run.tag }, extensions: { poolRef: run.pool } })),
      answered: created,
      async pending(w, run) {
        const own = await sandboxIs(w, run.id, 'Running', 'running');
        if (own) return own;
        const pool = (await w.stack.request('GET', `/v1/pools/${run.pool}`)).body?.status;
        return pool?.available === 1 ? undefined : `pool has ${pool?.available} ready members, not 1 (refill)`;
      },
    },
  },
  'bucket-mounted': {
    mount: {
      point: 'bucket-mounted',
      request: idempotentCreate((w, run) => tagged(run, { volumes: [volume(w)] })),
      answered: created,
      async pending(w, run) {
        const own = await sandboxIs(w, run.id, 'Running', 'running');
        if (own) return own;
        const mounts = (await w.stack.request('GET', '/v1/mounts')).body.items as Array<{ holders: string[] }>;
        if (mounts.length !== 1 || mounts[0]!.holders.join() !== run.id) return `mounts: ${JSON.stringify(mounts)}`;
        const present = mountsUnder(w.mountRoot).length;
        return present === 1 ? undefined : `${present} FUSE mounts, not 1`;
      },
    },
  },
  'bucket-unmounting': {
    unmount: {
      point: 'bucket-unmounting',
      prepare: async (w, run) => void (run.id = await runningSandbox(w, { volumes: [volume(w)] })),
      request: (w, run) => w.stack.request('DELETE', `/v1/sandboxes/${run.id}`),
      answered: deleted,
      async pending(w, run) {
        const gone = await sandboxGone(w, run.id);
        if (gone) return gone;
        const mounts = (await w.stack.request('GET', '/v1/mounts')).body.items as unknown[];
        const present = mountsUnder(w.mountRoot).length;
        return mounts.length || present ? `${mounts.length} mount actors, ${present} FUSE mounts left` : undefined;
      },
    },
  },
  'snapshot-committing': {
    snapshot: {
      point: 'snapshot-committing',
      prepare: async (w, run) => void (run.source = await runningSandbox(w)),
      async request(w, run) {
        const r = await w.stack.request('POST', `/v1/sandboxes/${run.source}/snapshots`, {});
        if (r.status === 202) run.snapshot = r.body.id;
        return r;
      },
      answered: created,
      async pending(w, run) {
        const state = (await w.stack.request('GET', `/v1/snapshots/${run.snapshot}`)).body?.status?.state;
        if (state !== 'Ready') return `snapshot ${run.snapshot} is ${state}`;
        const images = await w.stack.docker.listImages({ filters: { label: [`${LABELS.snapshotId}=${run.snapshot}`] } });
        return images.length === 1 ? undefined : `${images.length} images of the snapshot, not 1`;
      },
    },
  },
};

export const SAGAS: Record<string, Saga> = Object.assign({}, ...Object.values(BY_POINT));
export interface Cell {
  saga: string;
  fault: Fault;
}
export interface CellResult extends Cell {
  ok: boolean;
  ms: number;
  detail?: string;
}

/** The whole matrix, or its diagonal: each saga once, the faults taken in turn (what `.ci/run` runs). */
export function cells(which: 'full' | 'reduced'): Cell[] {
  const sagas = Object.keys(SAGAS);
  if (which === 'reduced') return sagas.map((saga, i) => ({ saga, fault: FAULTS[i % FAULTS.length]! }));
  return sagas.flatMap((saga) => FAULTS.map((fault) => ({ saga, fault })));
}

/** A Tidebox for the matrix: ossfs on a local S3, pools allowed, the sweep of orphans on. */
export async function startWorld(): Promise<World> {
  const s3 = await LocalS3.start([BUCKET]);
  const stack = await Stack.start({ config: ossfsStackConfig(randomBytes(32).toString('base64'), { server: { createWaitSeconds: 60 } }) });
  return { stack, s3, mountRoot: join(stack.dataDir, 'mounts') };
}

export async function stopWorld(w: World | undefined): Promise<void> {
  detachMounts(w?.mountRoot);
  await w?.stack.destroy();
  await w?.s3.stop();
}

const faultsDir = (w: World) => join(w.stack.dataDir, 'faults');
const hung = (w: World, point: FaultPoint) =>
  existsSync(faultsDir(w)) ? readdirSync(faultsDir(w)).filter((f) => f.startsWith(`${point}.`) && !f.endsWith('.release')) : [];

/** A request, sent again (bounded) while it ends in no answer: the connection dropped (API killed), or a 5xx. */
async function untilAnswered(w: World, saga: Saga, run: Run, first: Promise<HttpResult>): Promise<void> {
  let attempt: Promise<HttpResult> = first;
  for (let tries = 1; ; tries++) {
    const r = await attempt.catch((err: Error) => ({ status: 0, headers: new Headers(), body: err.message }) as HttpResult);
    if (saga.answered(r)) return;
    if (tries >= 20) throw new Error(`the client's request was never answered: last ${r.status} ${JSON.stringify(r.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    attempt = saga.request(w, run);
  }
}

/** One cell: prepare, arm the point, send the request, make the fault when the step hangs, then check. */
export async function runCell(w: World, cell: Cell): Promise<CellResult> {
  const started = Date.now();
  const saga = SAGAS[cell.saga]!;
  const run: Run = { tag: randomUUID() };
  const { stack } = w;
  try {
    rmSync(faultsDir(w), { recursive: true, force: true });
    if (w.armed) await restartWorker(w);
    await saga.prepare?.(w, run);
    await restartWorker(w, saga.point);
    const inFlight = saga.request(w, run);
    inFlight.catch(() => undefined); // an API killed under it: answered below, by a retry
    const [file] = await waitFor(`the ${saga.point} fault point`, () => hung(w, saga.point).length > 0 && hung(w, saga.point), 60_000, 50);
    if (cell.fault === 'worker-kill') {
      await stack.worker.kill();
      stack.startWorker();
      w.armed = undefined;
    } else {
      if (cell.fault === 'api-kill') {
        await stack.api.kill();
        await stack.startApi();
      } else {
        await stack.temporal.stop();
        await stack.temporal.start();
      }
      writeFileSync(join(faultsDir(w), `${file}.release`), '');
    }
    await untilAnswered(w, saga, run, inFlight);
    let why: string | undefined;
    await waitFor(`${cell.saga} to converge`, async () => !(why = await saga.pending(w, run)), 120_000, 250).catch(() => {
      throw new Error(`not converged: ${why}`);
    });
    await cleanUp(w, run);
    return { ...cell, ok: true, ms: Date.now() - started };
  } catch (err) {
    if (w.armed) await restartWorker(w).catch(() => undefined);
    await cleanUp(w, run).catch(() => undefined);
    return { ...cell, ok: false, ms: Date.now() - started, detail: (err as Error).message.split('\n')[0] };
  }
}

/** Remove what the run made, then check the stack holds nothing: containers, FUSE mounts, snapshot images, networks beyond the tenant's. */
async function cleanUp(w: World, run: Run): Promise<void> {
  const { stack } = w;
  // Whatever the tag names: a duplicate a retried request made shows here, and is counted below.
  const mine = await stack.request('GET', `/v1/sandboxes?metadata=${encodeURIComponent(`chaos=${run.tag}`)}`);
  const ids = new Set([run.id, run.source, ...((mine.body?.items ?? []) as Array<{ id: string }>).map((s) => s.id)].filter(Boolean));
  for (const id of ids) await stack.request('DELETE', `/v1/sandboxes/${id}`);
  if (run.pool) await stack.request('DELETE', `/v1/pools/${run.pool}`);
  if (run.snapshot)
    await waitFor(
      'the snapshot deleted',
      async () => [204, 404].includes((await stack.request('DELETE', `/v1/snapshots/${run.snapshot}`)).status),
      60_000,
      250,
    );
  const tagged = (mine.body?.items ?? []).length;
  if (tagged > 1) throw new Error(`${tagged} sandboxes for one request (a duplicate)`);
  let left: string[] = [];
  await waitFor(
    'nothing left',
    async () => {
      const label = { label: [`${LABELS.instance}=${stack.instance}`] };
      const [containers, images, networks] = await Promise.all([
        stack.containers(),
        stack.docker.listImages({ filters: label }),
        stack.docker.listNetworks({ filters: label }),
      ]);
      left = [
        ...containers.map((c) => `container of ${c.Labels[LABELS.sandboxId]} (${c.State})`),
        ...images.map((i) => `image ${i.RepoTags?.join()}`),
        // The tenant's network stays while the tenant lives.
        ...networks.slice(1).map((n) => `network ${n.Name}`),
        ...mountsUnder(w.mountRoot).map((m) => `mount ${m}`),
      ];
      return left.length === 0;
    },
    60_000,
    250,
  ).catch(() => {
    throw new Error(`left behind: ${left.join(', ')}`);
  });
}

/** The matrix as a table: sagas down, faults across. */
export function table(results: CellResult[]): string {
  const sagas = [...new Set(results.map((r) => r.saga))];
  const lines = [`| saga (step) | ${FAULTS.join(' | ')} |`, `|---|${FAULTS.map(() => '---').join('|')}|`];
  for (const saga of sagas) {
    const cell = (f: Fault) => {
      const r = results.find((x) => x.saga === saga && x.fault === f);
      return r ? (r.ok ? `ok ${(r.ms / 1000).toFixed(0)} s` : `FAIL: ${r.detail}`) : '·';
    };
    lines.push(`| ${saga} (${SAGAS[saga]!.point}) | ${FAULTS.map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}
