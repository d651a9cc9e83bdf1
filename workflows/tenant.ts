import { allHandlersFinished, condition, continueAsNew, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { MessagingActivities } from '../contracts/messaging';
import {
  limitsQuery,
  recordSignal,
  releaseSignal,
  reserveUpdate,
  type TenantWorkflow,
  type TenantWorkflowInput,
  usageQuery,
} from '../contracts/tenant-actor';
import { admissionProblem, type Reservation, sandboxesHeld, type Usage, type UsageLimits } from '../core/quotas';

/** A run continues as new after this many events, whatever Temporal suggests (every create adds a few). */
const MAX_EVENTS_PER_RUN = 2000;
/** Defaults: a reservation older than this whose sandbox actor is missing or closed is given back; checked this often. */
const CHECK = { graceSeconds: 120, intervalSeconds: 60 };
/**
 * At most this many reservations are checked at a time (≈ 60 KB of ids in the activity's input and
 * output, far below Temporal's payload limits), the next ones at the next check, round and round.
 */
const CHECK_BATCH = 2000;

/**
 * The tenant actor, id `tenant/<name>`: the durable usage of one tenant. Every create reserves its
 * sandbox's share through an Update, which admits or refuses against every other reservation at once
 * (Updates on one workflow run one handler at a time, and this one never waits), so 50 concurrent
 * creates against `maxSandboxes = 10` admit exactly 10. A sandbox actor gives its share back as it
 * terminates (delete, expiry, after a failure). Whatever never says so — a create that crashed
 * between reserving and starting its actor, an actor an operator terminated — is found by checking
 * old reservations against their actors every minute.
 */
export const tenantWorkflow: TenantWorkflow = async (input: TenantWorkflowInput): Promise<void> => {
  const { sandboxesOpen } = proxyActivities<MessagingActivities>({
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });
  const check = input.check ?? CHECK;
  const reservations = new Map<string, Reservation & { at: string }>(Object.entries(input.carried?.reservations ?? {}));
  const usage = (): Usage => {
    let [sandboxes, cpuMillis, memoryBytes, snapshots, pools] = [0, 0, 0, 0, 0];
    for (const r of reservations.values()) {
      if (r.kind === 'snapshot') {
        snapshots++;
        continue;
      }
      if (r.kind === 'pool') pools++;
      sandboxes += sandboxesHeld(r);
      cpuMillis += r.cpuMillis;
      memoryBytes += r.memoryBytes;
    }
    return { sandboxes, cpuMillis, memoryBytes, snapshots, pools };
  };

  let lastLimits: UsageLimits | null = null;
  const keep = (r: Reservation): Reservation => ({
    cpuMillis: r.cpuMillis,
    memoryBytes: r.memoryBytes,
    ...(r.kind ? { kind: r.kind } : {}),
    ...(r.sandboxes !== undefined ? { sandboxes: r.sandboxes } : {}),
  });
  setHandler(reserveUpdate, ({ sandboxId, reservation, limits, replace }) => {
    lastLimits = limits;
    const held = reservations.get(sandboxId);
    if (held && !replace) return { admitted: true, usage: usage() };
    // A replacement (a pool resized) is judged as if the old share were given back first.
    reservations.delete(sandboxId);
    const problem = admissionProblem(usage(), reservation, limits);
    if (problem) {
      if (held) reservations.set(sandboxId, held);
      return { admitted: false, message: problem, usage: usage() };
    }
    reservations.set(sandboxId, { ...keep(reservation), at: held?.at ?? new Date().toISOString() });
    return { admitted: true, usage: usage() };
  });
  setHandler(recordSignal, ({ sandboxId, reservation }) => {
    if (!reservations.has(sandboxId)) reservations.set(sandboxId, { ...keep(reservation), at: new Date().toISOString() });
  });
  setHandler(releaseSignal, ({ sandboxId }) => {
    reservations.delete(sandboxId);
  });
  setHandler(usageQuery, usage);
  setHandler(limitsQuery, () => lastLimits);

  /** Where the next check's batch starts among the old reservations. */
  let cursor = 0;
  const runIsLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= MAX_EVENTS_PER_RUN;
  for (;;) {
    const ready = () => runIsLong() && allHandlersFinished();
    if (reservations.size === 0) {
      // Nothing to check: sleep until a reservation arrives (or the run is long), adding no history meanwhile.
      await condition(() => reservations.size > 0 || ready());
      if (ready()) break;
      continue;
    }
    if (await condition(ready, check.intervalSeconds * 1000)) break;
    const old = [...reservations].filter(([, r]) => Date.now() - Date.parse(r.at) > check.graceSeconds * 1000).map(([id]) => id);
    if (cursor >= old.length) cursor = 0;
    const batch = old.slice(cursor, cursor + CHECK_BATCH);
    cursor += CHECK_BATCH;
    if (!batch.length) continue;
    const { open } = await sandboxesOpen({ sandboxIds: batch, tenant: input.tenant }); // snapshot:<id> and pool keys are asked of their actors
    const stillOpen = new Set(open);
    for (const id of batch) if (!stillOpen.has(id)) reservations.delete(id);
  }
  await continueAsNew<TenantWorkflow>({ tenant: input.tenant, check, carried: { reservations: Object.fromEntries(reservations) } });
};
