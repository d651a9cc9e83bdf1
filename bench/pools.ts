import { Sandbox } from '@alibaba-group/opensandbox';
import Dockerode from 'dockerode';
import { sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../tests/helpers/stack';
import { interleaved, quantile, RAW_NETWORK, rawCycle, removeRawLeftovers, timed, WARMUP } from './create-delete';

/**
 * The warm pool part of `npm run bench` (docs/pools.md), in one run beside the raw engine:
 *  - a claim: POST /v1/sandboxes naming a pool with a ready member → answered Running;
 *  - time to interactive through the published TS SDK: `Sandbox.create` (health check on) naming the
 *    pool, then `commands.run("echo ready")` returns;
 *  - a cold create through Tidebox (no pool) and a raw Docker create + start of the same container.
 * Each claim waits first until the pool is back to bufferMin (every claim meets a ready member; the
 * refill is not timed). Bounded: N iterations and a time budget.
 */
const N = Number(process.env.BENCH_ITERATIONS ?? 30);
const BUDGET_MS = 12 * 60_000;
const API_KEY = 'bench-pools-key-0123456789';
const POOL = 'bench';
const BUFFER = 3;

export async function benchPools(): Promise<void> {
  const deadline = Date.now() + BUDGET_MS;
  const docker = new Dockerode();
  const stack = await Stack.start({ apiKey: API_KEY, config: { pools: { maxMembers: 10 } } });
  await docker.createNetwork({ Name: RAW_NETWORK, Driver: 'bridge', Labels: { 'tidebox.io/bench': 'raw' } });
  const { timeout: _timeout, ...template } = sandboxRequest();
  const ready = () =>
    waitFor(
      'the pool to be refilled',
      async () => {
        const { body } = await stack.request('GET', `/v1/pools/${POOL}`);
        return body.status?.available === BUFFER;
      },
      60_000,
      50,
    );
  const steps = new StepClock();
  try {
    const created = await stack.request('POST', '/v1/pools', {
      name: POOL,
      template,
      capacitySpec: { bufferMin: BUFFER, bufferMax: BUFFER, poolMin: 0, poolMax: 2 * BUFFER },
    });
    if (created.status !== 201) throw new Error(`pool create failed: ${created.status} ${JSON.stringify(created.body)}`);

    const claimOnce = async () => {
      await ready();
      const [r, ms] = await timed(() => stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: POOL } }));
      if (r.status !== 202 || r.body.status.state !== 'Running') throw new Error(`claim failed: ${r.status} ${JSON.stringify(r.body)}`);
      await stack.request('DELETE', `/v1/sandboxes/${r.body.id}`);
      return ms;
    };
    const interactive = async (i: number) => {
      await ready();
      steps.recording = i >= WARMUP;
      const [sandbox, ms] = await timed(async () => {
        const sb = await Sandbox.create({
          connectionConfig: { domain: stack.baseUrl, apiKey: API_KEY },
          image: TEST_IMAGE,
          entrypoint: template.entrypoint as string[],
          resource: template.resourceLimits as Record<string, string>,
          extensions: { poolRef: POOL },
          timeoutSeconds: 300,
        });
        const run = await sb.commands.run('echo ready');
        if (run.logs.stdout.map((m) => m.text).join('') !== 'ready') throw new Error('echo ready did not answer ready');
        return sb;
      });
      steps.recording = false;
      await sandbox.kill();
      return ms;
    };
    const coldOnce = async () => {
      const [r, ms] = await timed(() => stack.request('POST', '/v1/sandboxes', sandboxRequest()));
      if (r.body.status?.state !== 'Running') throw new Error(`cold create failed: ${r.status}`);
      await stack.request('DELETE', `/v1/sandboxes/${r.body.id}`);
      return ms;
    };
    // One of each per round, so the VM's drift over the run is in every column alike.
    const { claim, tti, cold, raw } = await interleaved(
      { claim: claimOnce, tti: interactive, cold: coldOnce, raw: async (i: number) => (await rawCycle(docker, i)).create },
      N,
      deadline,
    );
    const { body: pool } = await stack.request('GET', `/v1/pools/${POOL}`);

    const r50 = quantile(raw, 0.5);
    const r95 = quantile(raw, 0.95);
    const row = (what: string, t: number[]) => {
      const [t50, t95] = [quantile(t, 0.5), quantile(t, 0.95)];
      return `| ${what} | ${t50.toFixed(0)} | ${t95.toFixed(0)} | ${r50.toFixed(0)} | ${r95.toFixed(0)} | ${(t50 / r50).toFixed(2)} |`;
    };
    console.log(`\npools: ${N} rounds of one cycle each, interleaved (after ${WARMUP} warm-up), pool bufferMin ${BUFFER}, times in ms`);
    console.log(`(claims that met a ready member: ${pool.claims} of ${pool.claims + pool.misses})\n`);
    console.log('| measure | Tidebox p50 | Tidebox p95 | raw create+start p50 | raw p95 | ratio p50 |');
    console.log('|---|---|---|---|---|---|');
    console.log(row('claim from a pool → Running (API)', claim));
    console.log(row('SDK Sandbox.create (health check) + `echo ready`, pooled', tti));
    console.log(row('cold create → Running (API)', cold));
    console.log('\ntime to interactive, per SDK call (p50 / p95 ms; the calls are sequential):\n');
    console.log('| call | p50 | p95 |');
    console.log('|---|---|---|');
    for (const [call, ms] of steps.byCall())
      console.log(`| ${call} | ${quantile(ms, 0.5).toFixed(1)} | ${quantile(ms, 0.95).toFixed(1)} |`);
  } finally {
    steps.restore();
    await stack.request('DELETE', `/v1/pools/${POOL}`).catch(() => undefined);
    await stack.destroy();
    await removeRawLeftovers(docker);
  }
}

/**
 * Times each HTTP call the SDK makes (it calls the global fetch), named by method and path shape, while
 * `recording`: where an SDK step's time goes without changing the SDK.
 */
class StepClock {
  recording = false;
  private readonly calls = new Map<string, number[]>();
  private readonly original = globalThis.fetch;

  constructor() {
    globalThis.fetch = async (input, init) => {
      const request = input instanceof Request ? input : undefined;
      const url = new URL(request?.url ?? String(input));
      const call = `${init?.method ?? request?.method ?? 'GET'} ${shape(url.pathname)}`;
      const started = performance.now();
      const response = await this.original(input, init);
      if (!this.recording) return response;
      // The body is part of the call: a command's answer streams until it ends.
      const body = await response.arrayBuffer();
      const list = this.calls.get(call) ?? [];
      list.push(performance.now() - started);
      this.calls.set(call, list);
      const empty = [101, 204, 205, 304].includes(response.status);
      return new Response(empty ? null : body, { status: response.status, statusText: response.statusText, headers: response.headers });
    };
  }

  byCall(): [string, number[]][] {
    return [...this.calls];
  }

  restore(): void {
    globalThis.fetch = this.original;
  }
}

/** A path with its ids taken out: /v1/sandboxes/{id}/endpoints/44772. */
function shape(path: string): string {
  return path.replace(/\/sandboxes\/[^/]+/, '/sandboxes/{id}');
}
