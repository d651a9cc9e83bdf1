import {
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertMemo,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { MessagingActivities } from '../contracts/messaging';
import {
  adoptedSignal,
  claimUpdate,
  configureUpdate,
  deletePoolUpdate,
  describePoolQuery,
  holdsMemberQuery,
  specQuery,
  type ClaimAnswer,
  type PoolWorkflow,
  reservationQuery,
  unclaimSignal,
} from '../contracts/pool-actor';
import type { SandboxRuntime, StartedWorkload } from '../contracts/runtime';
import {
  membersToDrain,
  membersToWarm,
  type PoolMember,
  type PoolView,
  type PoolWorkflowInput,
  poolStatus,
  templateView,
} from '../core/pools';
import { poolReservation } from '../core/quotas';
import { hostTaskQueue } from '../core/sandbox';
import { describeFailure, reject } from './failures';
import { KeyedClaims } from './pool-keys';
import { releaseQuota } from './quota';

/** A run continues as new after this many events (every member adds a handful). */
const MAX_EVENTS_PER_RUN = 2000;
/** At most this many members are being made at once. */
const WARM_CONCURRENCY = 4;
/** After a member could not be made, wait this long (doubling, at most the cap) before the next try. */
const BACKOFF_MS = { first: 2_000, max: 300_000 };

/**
 * The pool actor, id `pool/<tenant>/<name>`: the durable ledger of one tenant's warm pool. Members
 * are made through the same host activities as a sandbox, under the id the sandbox that claims one
 * will have, then frozen; the ledger (member → warming, ready, claimed, draining) is this workflow's
 * state, so a crash of any process neither forgets a member nor hands one out twice: a claim is an
 * Update, and Updates on one workflow run one handler at a time. A claimed member leaves the ledger
 * when its sandbox actor says it took the container over; one whose actor never appears (the API
 * crashed between claim and start) is destroyed after `claimTimeoutSeconds`, never made ready again.
 */
export const poolWorkflow: PoolWorkflow = async (input: PoolWorkflowInput): Promise<void> => {
  // A pool on its host's queue (input.onHost) sends its messaging activities to the shared queue.
  const shared = input.onHost?.sharedQueue ?? workflowInfo().taskQueue;
  const onShared = input.onHost ? { taskQueue: shared } : {};
  const taskQueue = hostTaskQueue(shared, input.hostId);
  const runtime = proxyActivities<SandboxRuntime>({
    taskQueue,
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 5 },
  });
  /** Removal must eventually succeed: a leaked container is worse than a slow drain. */
  const teardown = proxyActivities<SandboxRuntime>({
    taskQueue,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '30s' },
  });
  const { sandboxesOpen } = proxyActivities<MessagingActivities>({
    ...onShared,
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });
  /** A resize's verdict is awaited by the PUT that asked: bounded, so a lost tenant actor fails the PUT instead of holding it. */
  const quota = proxyActivities<MessagingActivities>({
    ...onShared,
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 5 },
  });

  /**
   * The thaw inside a claim (input.onHost): run by this host's worker in the claim's own workflow
   * task, no dispatch. Short and tried twice: a member that will not thaw is left to the sandbox actor.
   */
  const onThisHost = proxyLocalActivities<SandboxRuntime>({ startToCloseTimeout: '10 seconds', retry: { maximumAttempts: 2 } });

  const { tenant, namespace, name, createdAt } = input;
  let { template, spec, capacity } = input;
  const members: Record<string, PoolMember> = { ...(input.carried?.members ?? {}) };
  let generation = input.carried?.generation ?? 1;
  let deleting = input.carried?.deleting ?? false;
  /** When the delete was accepted: the drain is bounded from then (input.drainTimeoutSeconds). */
  let deletingSince = input.carried?.deletingSince ?? (deleting ? Date.now() : undefined);
  let claims = input.carried?.claims ?? 0;
  let misses = input.carried?.misses ?? 0;
  const keyed = new KeyedClaims(input.carried?.keyed);
  let changed = true;
  let failures = 0;
  let backoffUntil = 0;
  let lastError: string | undefined;
  const inflight = new Set<Promise<void>>();

  const view = (): PoolView & { claims: number; misses: number; lastError?: string } => ({
    name,
    tenant,
    template: templateView(template),
    capacitySpec: capacity,
    status: poolStatus(members),
    createdAt,
    hostId: input.hostId,
    ...(deleting ? { deleting: true } : {}),
    claims,
    misses,
    ...(lastError ? { lastError } : {}),
  });
  const touch = () => (changed = true);
  const track = (p: Promise<void>) => {
    inflight.add(p);
    void p.finally(() => {
      inflight.delete(p);
      touch();
    });
  };

  // Members left 'warming' or 'draining' by a previous run: their activities ended with that run.
  // Their containers may exist half-made; removing is idempotent, so drain them all.
  for (const [id, m] of Object.entries(members))
    if (m.state === 'warming' || m.state === 'draining') members[id] = { ...m, state: 'draining' };

  /** The run is about to continue as new (input.onHost pools): claims answer a miss meanwhile. */
  let continuing = false;
  /** The first claim not yet replaced, plus input.refillDelayMs: the refill waits until then while a member is ready. */
  let refillAt: number | undefined;
  const claim = async (): Promise<ClaimAnswer> => {
    const ready = Object.entries(members)
      .filter(([, m]) => m.state === 'ready' && m.generation === generation)
      .sort((a, b) => a[1].since - b[1].since)[0];
    touch();
    if (deleting || continuing || !ready) {
      misses++;
      return { memberId: null, spec };
    }
    // Marked before anything is awaited: a concurrent claim can never pick the same member.
    const [memberId] = ready;
    const claimedSpec = spec;
    const claimedAt = Date.now();
    members[memberId] = { ...ready[1], state: 'claimed', since: claimedAt, ...(input.onHost ? { thawed: true } : {}) };
    claims++;
    if (input.refillDelayMs) refillAt ??= claimedAt + input.refillDelayMs;
    if (!input.onHost) return { memberId, spec: claimedSpec };
    let started: StartedWorkload;
    try {
      const known = ready[1].started;
      started = await onThisHost.adoptContainer({ sandboxId: memberId, namespace, ports: claimedSpec.ports, ...(known ? { known } : {}) });
    } catch {
      // Not thawed here (gone, or the engine slow): the sandbox actor adopts it — or finds it gone and goes cold.
      return { memberId, spec: claimedSpec };
    }
    const m = members[memberId];
    if (m?.state !== 'claimed' || m.since !== claimedAt) {
      // Judged a stale claim while it thawed (and so being removed): not this claim's any more.
      claims--;
      misses++;
      return { memberId: null, spec: claimedSpec };
    }
    // The claim timeout counts from the answer: the create has that long to start its sandbox actor.
    const answered = Date.now();
    members[memberId] = { ...m, since: answered };
    return { memberId, spec: claimedSpec, started, staleFrom: answered + input.claimTimeoutSeconds * 1000 };
  };
  setHandler(claimUpdate, (opts) => (opts?.key === undefined ? claim() : keyed.claim(opts.key, claim, () => spec)));
  /** A member a claim thawed and gave back: frozen again, then ready (removed if that fails). */
  const refreeze = async (id: string, gen: number) => {
    try {
      await runtime.pauseContainer({ sandboxId: id, primeExecd: true });
      const m = members[id];
      if (m?.state === 'warming') members[id] = { ...m, state: 'ready', generation: gen, since: Date.now() };
    } catch {
      if (members[id]) members[id] = { ...members[id]!, state: 'draining', since: Date.now() };
    }
  };
  setHandler(unclaimSignal, ({ memberId }) => {
    const m = members[memberId];
    keyed.forget(memberId);
    if (m?.state === 'claimed' && m.thawed) {
      // It may run: never ready as it is. Frozen again first (a tenant refused over quota again and
      // again must not make the host create and remove a member each time).
      members[memberId] = { state: 'warming', generation: m.generation, since: Date.now(), ...(m.started ? { started: m.started } : {}) };
      track(refreeze(memberId, m.generation));
    } else if (m?.state === 'claimed') members[memberId] = { ...m, state: 'ready', since: Date.now() };
    touch();
  });
  setHandler(adoptedSignal, ({ memberId }) => {
    if (members[memberId]?.state === 'claimed') delete members[memberId];
    touch();
  });
  /** A change in progress (its reservation asked for): the next waits, so shares and settings change in one order. */
  let configuring = false;
  setHandler(
    configureUpdate,
    async (next) => {
      await condition(() => !configuring);
      configuring = true;
      try {
        if (deleting) throw reject('POOL_NOT_FOUND', `pool ${name} is being deleted`);
        if (input.reservation && next.limits) {
          // The new size in place of the old: refused, nothing changes (the old share stays).
          const verdict = await quota.reserveQuota({
            tenant,
            key: input.reservation,
            reservation: poolReservation(next.spec.resources, next.capacity.poolMax),
            limits: next.limits,
            replace: true,
          });
          if (!verdict.admitted) throw reject('QUOTA_EXCEEDED', verdict.message);
          if (deleting) throw reject('POOL_NOT_FOUND', `pool ${name} is being deleted`);
        }
        if (JSON.stringify(next.spec) !== JSON.stringify(spec)) generation++;
        ({ template, spec, capacity } = next);
        failures = 0;
        backoffUntil = 0;
        lastError = undefined;
        touch();
        return view();
      } finally {
        configuring = false;
      }
    },
    {
      validator: (_next) => {
        if (deleting) throw reject('POOL_NOT_FOUND', `pool ${name} is being deleted`);
      },
    },
  );
  setHandler(deletePoolUpdate, () => {
    deletingSince ??= Date.now();
    deleting = true;
    touch();
    return view();
  });
  setHandler(describePoolQuery, view);
  setHandler(reservationQuery, () => input.reservation ?? null);
  setHandler(holdsMemberQuery, (memberId) => memberId in members);
  setHandler(specQuery, () => (deleting ? null : spec));

  const warm = async (id: string, gen: number) => {
    try {
      await runtime.ensureContainer({ sandboxId: id, tenant, namespace, spec, pool: workflowInfo().workflowId });
      const started = await runtime.startContainer({ sandboxId: id, namespace, ports: spec.ports });
      if (input.freeze !== false) await runtime.pauseContainer({ sandboxId: id, primeExecd: true });
      // Frozen, its container and ports stay as its start said: a claim (input.onHost) thaws it on that word.
      members[id] = { state: 'ready', generation: gen, since: Date.now(), ...(input.onHost ? { started } : {}) };
      failures = 0;
      lastError = undefined;
    } catch (err) {
      // Whatever was made is removed; the next member waits a while (a bad template must not spin).
      members[id] = { state: 'draining', generation: gen, since: Date.now() };
      failures++;
      backoffUntil = Date.now() + Math.min(BACKOFF_MS.first * 2 ** (failures - 1), BACKOFF_MS.max);
      const { reason, message } = describeFailure(err);
      lastError = `${reason}: ${message}`;
    }
  };
  /** Members whose removal is under way (one drain each). */
  const drainingNow = new Set<string>();
  const startDrain = (id: string) => {
    drainingNow.add(id);
    members[id] = { ...members[id]!, state: 'draining', since: Date.now() };
    track(
      (async () => {
        try {
          await teardown.removeContainers({ sandboxId: id, namespace });
          delete members[id];
        } catch {
          // Still 'draining' in the ledger: tried again after a while (removal retries on its own; this is a refusal).
          await sleep('30 seconds');
        } finally {
          drainingNow.delete(id);
        }
      })(),
    );
  };
  /** Claimed members whose sandbox actor never said it adopted them: its actor owns them if open, else they go. */
  const settleStaleClaims = async () => {
    const stale = Object.entries(members)
      .filter(([, m]) => m.state === 'claimed' && Date.now() - m.since >= input.claimTimeoutSeconds * 1000)
      .map(([id, m]) => [id, m.since] as const);
    if (!stale.length) return;
    const { open } = await sandboxesOpen({ sandboxIds: stale.map(([id]) => id) });
    for (const [id, since] of stale) {
      // Unclaimed and claimed again while we asked: a new claim, not the one judged stale.
      if (members[id]?.state !== 'claimed' || members[id]!.since !== since) continue;
      if (open.includes(id)) delete members[id];
      else {
        keyed.forget(id);
        startDrain(id);
      }
    }
  };

  let published = '';
  for (;;) {
    changed = false;
    const now = Date.now();
    for (const [id, m] of Object.entries(members)) {
      const drainable = m.state === 'draining' || (deleting && m.state === 'ready');
      if (drainable && !drainingNow.has(id)) startDrain(id);
    }
    if (!deleting) {
      for (const id of membersToDrain(members, capacity, generation)) if (!drainingNow.has(id)) startDrain(id);
      const warming = Object.values(members).filter((m) => m.state === 'warming').length;
      const held = refillAt !== undefined && now < refillAt && poolStatus(members).available > 0;
      if (!held) refillAt = undefined;
      const n = now >= backoffUntil && !held ? Math.min(membersToWarm(members, capacity), WARM_CONCURRENCY - warming) : 0;
      for (let i = 0; i < n; i++) {
        const id = uuid4();
        members[id] = { state: 'warming', generation, since: now };
        track(warm(id, generation));
      }
    }
    await settleStaleClaims();
    const snapshot = JSON.stringify(view());
    if (snapshot !== published) {
      upsertMemo({ view: view() });
      published = snapshot;
    }
    if (deleting && Object.keys(members).length === 0 && inflight.size === 0) break;
    // A drain that cannot finish (the members' host is gone) ends after its bound: what is left
    // there carries this pool's label, and that host's sweep removes it once no pool holds it.
    const drainEndsAt = deleting && input.drainTimeoutSeconds !== undefined ? deletingSince! + input.drainTimeoutSeconds * 1000 : Infinity;
    if (now >= drainEndsAt) {
      log.warn('pool deleted with members not removed: their host did not answer; its orphan sweep removes them', {
        pool: workflowInfo().workflowId,
        left: Object.keys(members).length,
      });
      break;
    }
    if (workflowInfo().historyLength > MAX_EVENTS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      // Claims that await a thaw could keep a handler running for as long as claims keep coming: from
      // here they answer a miss at once (a cold create), so the run can end. (Only pools that thaw.)
      if (input.onHost) continuing = true;
      await condition(() => inflight.size === 0);
      await condition(allHandlersFinished);
      await continueAsNew<PoolWorkflow>({
        ...input,
        template,
        spec,
        capacity,
        carried: {
          members,
          generation,
          deleting,
          claims,
          misses,
          keyed: keyed.carried(),
          ...(deletingSince !== undefined ? { deletingSince } : {}),
        },
      });
    }
    const claimDeadlines = Object.values(members)
      .filter((m) => m.state === 'claimed')
      .map((m) => Math.max(1000, m.since + input.claimTimeoutSeconds * 1000 - now));
    const waits = [
      ...claimDeadlines,
      !deleting && refillAt !== undefined && refillAt > now ? refillAt - now : Infinity,
      backoffUntil > now ? backoffUntil - now : Infinity,
      drainEndsAt - now,
    ];
    const timeout = Math.min(...waits);
    if (Number.isFinite(timeout)) await condition(() => changed, timeout);
    else await condition(() => changed);
  }
  await condition(allHandlersFinished);
  // Its members are gone: the tenant's quota gets the pool's share back (reserved by the API at create).
  if (input.reservation) await releaseQuota(tenant, input.reservation);
};
