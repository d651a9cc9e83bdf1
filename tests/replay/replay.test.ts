import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { payloadCodecsFor } from '../../platform/payload-codec';
import { repoRoot } from '../helpers/stack';
import { REPLAY_PAYLOAD_KEY } from './replay-key';

/**
 * The determinism guard: every recorded history (tests/replay/histories, see record.ts) replays
 * against the workflow bundle the worker ships. A workflow change that would break running
 * workflows of that type fails here, before it reaches a server.
 */
const dir = join(__dirname, 'histories');
const histories = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))) }));
const typeOf = (h: (typeof histories)[number]) =>
  h.history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? 'unknown';

const bundlePath = join(repoRoot(), 'dist/workflow-bundle.js');

async function replayAll(source: { workflowBundle: { codePath: string } } | { workflowsPath: string }) {
  const results = new Map<string, Error | undefined>();
  const iterable = Worker.runReplayHistories(
    // The read projection's sink, as the worker registers it (a replay calls none).
    { ...source, dataConverter: payloadCodecsFor(REPLAY_PAYLOAD_KEY), sinks: { sandboxViews: { publish: { fn: () => undefined } } } },
    histories.map((h) => ({ workflowId: h.name, history: h.history })),
  );
  for await (const result of iterable) results.set(result.workflowId, result.error);
  return results;
}

describe('workflow replay (determinism guard)', () => {
  it('when the histories are counted, then every workflow type Tidebox runs is covered, a failed-and-retried snapshot included', () => {
    const types = new Set(histories.map(typeOf));
    expect([...types].sort()).toEqual([
      'mountWorkflow',
      'poolWorkflow',
      'renewWorkflow',
      'sandboxWorkflow',
      'snapshotWorkflow',
      'tenantWorkflow',
    ]);
    // The tenant actor: a reserve Update, record and release Signals (from the API and a teardown's local activity).
    const tenant = histories.find((h) => h.name === 'tenant-reserved-released')?.history.events ?? [];
    const updates = tenant.map((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name).filter(Boolean);
    expect(updates).toContain('reserve');
    const signalNames = tenant.map((e) => e.workflowExecutionSignaledEventAttributes?.signalName).filter(Boolean);
    expect(signalNames).toEqual(expect.arrayContaining(['record', 'release']));
    expect(signalNames.filter((n) => n === 'release').length).toBeGreaterThanOrEqual(2);
    // A pool whose claims thawed members inside the claim (local activity markers) and whose refill waited (timers).
    const pool = histories.find((h) => h.name === 'pool-claimed-refilled-deleted')?.history.events ?? [];
    expect(pool.filter((e) => e.markerRecordedEventAttributes).length).toBeGreaterThanOrEqual(2);
    expect(pool.filter((e) => e.timerStartedEventAttributes).length).toBeGreaterThanOrEqual(1);
    expect(histories.map((h) => h.name)).toContain('snapshot-failed-retried');
    // A patched path (delete-cancels-provisioning) next to histories recorded before the patch.
    expect(histories.map((h) => h.name)).toContain('sandbox-deleted-while-provisioning');
    // Actors of version 2 give their quota back in a local activity (a marker), not a Signal command; older ones by the Signal.
    const expired = (name: string) => histories.find((h) => h.name === name)?.history.events ?? [];
    expect(expired('sandbox-expired-v2').filter((e) => e.markerRecordedEventAttributes)).toHaveLength(1);
    expect(expired('sandbox-expired-v2').some((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes)).toBe(false);
    expect(expired('sandbox-expired-v1').some((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes)).toBe(true);
    // A sandbox on the Kubernetes runtime that received runtimeProgress signals (patch runtime-progress).
    const pod = histories.find((h) => h.name === 'sandbox-pod-unschedulable');
    const signals = pod?.history.events?.map((e) => e.workflowExecutionSignaledEventAttributes?.signalName).filter(Boolean);
    expect(signals).toContain('runtimeProgress');
  });

  it('when every recorded history is replayed against the shipped workflow bundle, then none diverges', async () => {
    // The build writes the bundle the worker loads; replay exactly that.
    const source = existsSync(bundlePath)
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: require.resolve('../../workflows') };
    const results = await replayAll(source);
    expect(results.size).toBe(histories.length);
    const failures = [...results].filter(([, err]) => err !== undefined).map(([name, err]) => `${name}: ${err!.message}`);
    expect(failures).toEqual([]);
  });

  it('when a recorded workflow is changed incompatibly, then its histories fail to replay with a determinism violation and the others still pass', async () => {
    const results = await replayAll({ workflowsPath: require.resolve('./altered/workflows') });
    for (const h of histories) {
      const err = results.get(h.name);
      if (typeOf(h) === 'renewWorkflow' || typeOf(h) === 'snapshotWorkflow') {
        expect({ name: h.name, error: err?.constructor.name }).toEqual({ name: h.name, error: DeterminismViolationError.name });
        expect(err).toBeInstanceOf(DeterminismViolationError);
      } else {
        expect({ name: h.name, error: err?.message }).toEqual({ name: h.name, error: undefined });
      }
    }
  });
});
