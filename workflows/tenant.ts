import {
  allHandlersFinished,
  condition,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { MessagingActivities } from '../contracts/messaging';
import {
  limitsQuery,
  recordSignal,
  releaseSignal,
  reserveUpdate,
  TENANT_LEDGER_WORKFLOW_TYPE,
  type TenantWorkflow,
  type TenantWorkflowInput,
  usageQuery,
} from '../contracts/tenant-actor';
import { admissionProblem, packLedger, QuotaLedger, type Reservation, unpackLedger, type Usage, type UsageLimits } from '../core/quotas';

/**
 * A run continues as new after this many events, whatever Temporal suggests (every create and every
 * release adds one or two). Not longer: a Signal that arrives while the actor continues as new fails
 * that workflow task, the run is replayed from its first event, and the server refuses every message
 * to the actor until that replay ends (sandbox actors' releases wait meanwhile). Not shorter: every
 * run carries the whole ledger into the next (≈ 22 bytes a sandbox, packed).
 */
const MAX_EVENTS_PER_RUN = 1000;
/** Runs started before 2026-12-05 (without the `tenant-short-runs` marker) continued after 2,000. */
const MAX_EVENTS_PER_RUN_BEFORE = 2000;
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
  // At the start of the run, so a run started by older code replays with its own length.
  const maxEvents = patched('tenant-short-runs') ? MAX_EVENTS_PER_RUN : MAX_EVENTS_PER_RUN_BEFORE;
  const { carried } = input;
  const reservations = new QuotaLedger(carried?.ledger ? unpackLedger(carried.ledger) : Object.entries(carried?.reservations ?? {}));
  const usage = (): Usage => reservations.usage();

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
  const runIsLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= maxEvents;
  for (;;) {
    const ready = () => runIsLong() && allHandlersFinished();
    if (reservations.size === 0) {
      // Nothing to check: sleep until a reservation arrives (or the run is long), adding no history meanwhile.
      await condition(() => reservations.size > 0 || ready());
      if (ready()) break;
      continue;
    }
    if (await condition(ready, check.intervalSeconds * 1000)) break;
    const old = [...reservations.entries()].filter(([, r]) => Date.now() - Date.parse(r.at) > check.graceSeconds * 1000).map(([id]) => id);
    if (cursor >= old.length) cursor = 0;
    const batch = old.slice(cursor, cursor + CHECK_BATCH);
    cursor += CHECK_BATCH;
    if (!batch.length) continue;
    const { open } = await sandboxesOpen({ sandboxIds: batch, tenant: input.tenant }); // snapshot:<id> and pool keys are asked of their actors
    const stillOpen = new Set(open);
    for (const id of batch) if (!stillOpen.has(id)) reservations.delete(id);
  }
  const continueAsLedger = makeContinueAsNewFunc<TenantWorkflow>({ workflowType: TENANT_LEDGER_WORKFLOW_TYPE });
  await continueAsLedger({
    tenant: input.tenant,
    check,
    carried: { ledger: packLedger(reservations.entries(), Date.now(), check.graceSeconds * 1000) },
  });
};
