import Dockerode from 'dockerode';
import { sandboxRequest, Stack, TEST_IMAGE } from '../tests/helpers/stack';

/**
 * The lifecycle part of `npm run bench` (bench/main.ts): N sequential create (to Running) + delete cycles through Tidebox, and in the same
 * run N raw dockerode create + start + remove cycles of the same image, entrypoint, limits and
 * container settings, on a user-defined bridge network as Tidebox's tenant networks are.
 * Prints p50/p95 per phase and the Tidebox/raw ratios. Bounded: N iterations and a time budget.
 */
const N = Number(process.env.BENCH_ITERATIONS ?? 20);
export const WARMUP = 2;
const BUDGET_MS = 10 * 60_000;
/** docker.exposedPorts' default: every Tidebox sandbox publishes these. */
const PUBLISHED = [8080, 18080];

interface Sample {
  create: number;
  remove: number;
  total: number;
}

export const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};

export async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [v, Number(process.hrtime.bigint() - t) / 1e6];
}

async function tideboxCycle(stack: Stack): Promise<Sample> {
  const [created, create] = await timed(() => stack.request('POST', '/v1/sandboxes', sandboxRequest()));
  if (created.status !== 202 || created.body.status.state !== 'Running') {
    throw new Error(`create failed: ${created.status} ${JSON.stringify(created.body)}`);
  }
  const [deleted, remove] = await timed(() => stack.request('DELETE', `/v1/sandboxes/${created.body.id}`));
  if (deleted.status !== 204) throw new Error(`delete failed: ${deleted.status}`);
  return { create, remove, total: create + remove };
}

/** The raw path's own user-defined bridge network, as each Tidebox tenant has one (made once, outside the timings). */
export const RAW_NETWORK = `tidebox-bench-raw-${process.pid}`;

export async function rawCycle(docker: Dockerode, i: number): Promise<Sample> {
  const [container, create] = await timed(() => rawCreate(docker, `${i}`));
  const [, remove] = await timed(() => container.remove({ force: true, v: true }));
  return { create, remove, total: create + remove };
}

/** What the engine does for one Tidebox sandbox, done directly: create and start (name suffix `tag`). */
export async function rawCreate(docker: Dockerode, tag: string): Promise<Dockerode.Container> {
  const c = await docker.createContainer({
    name: `tidebox-bench-raw-${process.pid}-${tag}`,
    Image: TEST_IMAGE,
    Entrypoint: ['tail', '-f', '/dev/null'],
    Labels: { 'tidebox.io/bench': 'raw' },
    // Same work as a Tidebox sandbox: its default ports published on 127.0.0.1.
    ExposedPorts: Object.fromEntries(PUBLISHED.map((p) => [`${p}/tcp`, {}])),
    // Same container settings as a Tidebox sandbox (activities/docker/container-spec.ts defaults).
    HostConfig: {
      NanoCpus: 250_000_000,
      Memory: 64 * 2 ** 20,
      MemorySwap: 64 * 2 ** 20,
      PidsLimit: 512,
      Init: true,
      NetworkMode: RAW_NETWORK,
      CapDrop: ['ALL'],
      CapAdd: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID', 'KILL', 'NET_BIND_SERVICE'],
      SecurityOpt: ['no-new-privileges:true'],
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      Ulimits: [{ Name: 'nofile', Soft: 8192, Hard: 8192 }],
      PortBindings: Object.fromEntries(PUBLISHED.map((p) => [`${p}/tcp`, [{ HostIp: '127.0.0.1', HostPort: '' }]])),
    },
  });
  await c.start();
  return c;
}

/**
 * Rounds of one cycle of each kind, side by side: a VM's speed drifts by tens of percent over minutes,
 * and two blocks measured one after the other would put that drift into the ratio. The order
 * alternates per round, and each cycle starts after a short pause so that what the one before left
 * running (an actor ending after its answer, the engine's clean-up) is not charged to it.
 */
export async function interleaved<K extends string, S>(
  kinds: Record<K, (i: number) => Promise<S>>,
  rounds: number,
  deadline: number,
): Promise<Record<K, S[]>> {
  const names = Object.keys(kinds) as K[];
  const samples = Object.fromEntries(names.map((k) => [k, [] as S[]])) as Record<K, S[]>;
  for (let i = 0; i < WARMUP + rounds; i++) {
    if (Date.now() > deadline) throw new Error(`time budget exhausted after ${i} rounds`);
    for (const k of i % 2 ? [...names].reverse() : names) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const s = await kinds[k](i);
      if (i >= WARMUP) samples[k].push(s);
    }
  }
  return samples;
}

/** The pause before each measured cycle. */
const SETTLE_MS = 150;

export async function benchCreateDelete(): Promise<void> {
  const deadline = Date.now() + BUDGET_MS;
  const docker = new Dockerode();
  const stack = await Stack.start();
  await docker.createNetwork({ Name: RAW_NETWORK, Driver: 'bridge', Labels: { 'tidebox.io/bench': 'raw' } });
  try {
    const { tidebox, raw } = await interleaved({ tidebox: () => tideboxCycle(stack), raw: (i) => rawCycle(docker, i) }, N, deadline);
    const row = (phase: keyof Sample) => {
      const t50 = quantile(
        tidebox.map((s) => s[phase]),
        0.5,
      );
      const t95 = quantile(
        tidebox.map((s) => s[phase]),
        0.95,
      );
      const r50 = quantile(
        raw.map((s) => s[phase]),
        0.5,
      );
      const r95 = quantile(
        raw.map((s) => s[phase]),
        0.95,
      );
      return `| ${phase} | ${t50.toFixed(0)} | ${t95.toFixed(0)} | ${r50.toFixed(0)} | ${r95.toFixed(0)} | ${(t50 / r50).toFixed(2)} | ${(t95 / r95).toFixed(2)} |`;
    };
    console.log(`\n${N} rounds of one cycle each, interleaved (after ${WARMUP} warm-up), image ${TEST_IMAGE}, times in ms\n`);
    console.log('| phase | Tidebox p50 | Tidebox p95 | raw p50 | raw p95 | ratio p50 | ratio p95 |');
    console.log('|---|---|---|---|---|---|---|');
    for (const phase of ['create', 'remove', 'total'] as const) console.log(row(phase));
  } finally {
    await stack.destroy();
    await removeRawLeftovers(docker);
  }
}

/** What the raw cycles made: their containers (by label) and network. */
export async function removeRawLeftovers(docker: Dockerode): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: ['tidebox.io/bench=raw'] } })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
  await docker
    .getNetwork(RAW_NETWORK)
    .remove()
    .catch(() => undefined);
}
