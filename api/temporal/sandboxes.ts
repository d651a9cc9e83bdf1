import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { TypedSearchAttributes, type UpdateDefinition } from '@temporalio/common';
import {
  awaitSettledUpdate,
  deleteUpdate,
  describeQuery,
  eventsQuery,
  patchMetadataUpdate,
  announceRenewScheduleUpdate,
  pauseUpdate,
  renewUpdate,
  resumeUpdate,
  SANDBOX_WORKFLOW_TYPE,
  type SandboxWorkflow,
} from '../../contracts/sandbox-actor';
import { SA } from '../../contracts/search-attributes';
import type { StartedWorkload } from '../../contracts/runtime';
import { type Config, placementOf } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { judgeRenewal } from '../../core/expiry';
import { type MetadataPatch, metadataKeywords, metadataPatchProblems } from '../../core/metadata';
import {
  initialView,
  SANDBOX_ACTOR_VERSION,
  type MemoView,
  memoView,
  type SandboxEvent,
  type SandboxOutcome,
  type SandboxSpec,
  type SandboxState,
  type SandboxView,
  type SandboxWorkflowInput,
  sandboxWorkflowId,
} from '../../core/sandbox';
import { type Caller, canSee, type TenantCaller } from '../../core/tenants';
import type { SandboxViewStore, ViewQuery } from '../../platform/sandbox-views';
import type { TemporalGateway } from './gateway';
import type { QuotaService } from './quotas';
import { RecentViews } from './recent-views';
import { idempotentSandboxId, requestHashOf } from './sandbox-ids';
import { paginate, pagination } from './visibility';

export interface ListFilter {
  /** Admin callers only: one tenant's sandboxes (all tenants when absent). */
  tenant?: string;
  states: SandboxState[];
  metadata: Record<string, string>;
  page: number;
  pageSize: number;
}

const sandboxNotFound = (sandboxId: string) => new TideboxError('NOT_FOUND', `sandbox ${sandboxId} not found`);

/**
 * Sandboxes over their actors (`sandbox/<id>`): create starts one, reads come from its memo and the
 * visibility store, or for LIST the read projection (no worker needed either way), everything else is
 * an Update the actor validates.
 */
export function createSandboxService(
  temporal: TemporalGateway,
  config: Config,
  quotas: QuotaService,
  views?: { store: SandboxViewStore; warn: (msg: string, fields: Record<string, unknown>) => void },
) {
  const callMs = config.server.temporalCallTimeoutSeconds * 1000;
  const placement = placementOf(config);
  const recent = new RecentViews(config.server.dataPlaneViewMs);
  /** An Update to the sandbox's actor; `what` names it in the 504 when no worker takes it in time. */
  const update = <Ret, Args extends unknown[]>(
    sandboxId: string,
    def: UpdateDefinition<Ret, Args>,
    args: Args,
    what: string,
    deadlineMs = callMs,
  ) => {
    // Whatever it changes, the data plane reads the sandbox afresh once it is sent and once it is done.
    recent.drop(sandboxId);
    return temporal
      .update(sandboxWorkflowId(sandboxId), def, args, {
        what,
        deadlineMs,
        notFound: () => sandboxNotFound(sandboxId),
        inTransition: () =>
          new TideboxError('INVALID_STATE', `sandbox ${sandboxId} changed state while the ${what} was in flight; retry it`),
      })
      .finally(() => recent.drop(sandboxId));
  };

  /** The sandbox's memo view if the caller may see it; another tenant's sandbox is 404, exactly like a missing one. */
  async function find(caller: Caller, sandboxId: string): Promise<MemoView> {
    const mark = recent.mark();
    const found = await temporal.openActor<MemoView>(sandboxWorkflowId(sandboxId), SANDBOX_WORKFLOW_TYPE);
    if (found) recent.put(found.view, mark);
    if (!found || !canSee(caller, found.view.tenant) || found.view.status.state === 'Terminated') throw sandboxNotFound(sandboxId);
    return found.view;
  }

  /**
   * For the data plane (execd, the port proxy, endpoints): a Running view read within
   * server.dataPlaneViewMs may be reused (recent-views.ts says what may be stale); the entrypoint is
   * not filled in. Another tenant's sandbox is 404, as in find.
   */
  async function reach(caller: Caller, sandboxId: string): Promise<MemoView> {
    const hit = recent.get(sandboxId);
    if (!hit) return find(caller, sandboxId);
    if (!canSee(caller, hit.tenant)) throw sandboxNotFound(sandboxId);
    return hit;
  }

  /** A memo view as clients see it: an entrypoint the memo left out comes from the actor. */
  async function complete(view: MemoView): Promise<SandboxView> {
    if (!view.entrypointElided) return view;
    return temporal.call(() => temporal.client.workflow.getHandle(sandboxWorkflowId(view.id)).query(describeQuery));
  }

  const get = async (caller: Caller, sandboxId: string): Promise<SandboxView> => complete(await find(caller, sandboxId));

  /** Only a tenant creates: its sandboxes are its own (the route refuses admin keys with 403). */
  async function create(
    caller: TenantCaller,
    spec: SandboxSpec,
    opts: {
      idempotencyKey?: string;
      respondAsync: boolean;
      /**
       * A claimed warm pool member: the sandbox takes its id and its container (the pool actor's
       * workflow id); `started` when the claim thawed it (the actor starts Running on it), with the
       * claim's `staleFrom`.
       */
      member?: { id: string; pool: string; started?: StartedWorkload; staleFrom?: number };
      /** The host it must run on (a restored snapshot's, a pool's); otherwise placement picks one. */
      hostId?: string;
    },
  ): Promise<SandboxView> {
    const { tenant, namespace } = caller;
    const mark = recent.mark();
    const sandboxId = opts.member?.id ?? (opts.idempotencyKey ? idempotentSandboxId(tenant, opts.idempotencyKey) : randomUUID());
    const requestHash = requestHashOf(spec);
    const input: SandboxWorkflowInput = {
      sandboxId,
      tenant,
      namespace,
      hostId: opts.hostId ?? placement.next(),
      createdAt: new Date().toISOString(),
      spec,
      requestHash,
      expiry: { maxTimeoutSeconds: config.sandbox.maxTimeoutSeconds },
      actorVersion: SANDBOX_ACTOR_VERSION,
      ...(opts.member
        ? {
            pooled: {
              pool: opts.member.pool,
              ...(opts.member.started ? { started: opts.member.started } : {}),
              ...(opts.member.staleFrom ? { staleFrom: opts.member.staleFrom } : {}),
            },
          }
        : {}),
    };
    const view = initialView(input);
    const workflowId = sandboxWorkflowId(sandboxId);

    const startOptions = {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [input] as [SandboxWorkflowInput],
      memo: { view: memoView(view), requestHash },
      typedSearchAttributes: new TypedSearchAttributes([
        { key: SA.tenant, value: tenant },
        { key: SA.state, value: view.status.state },
        { key: SA.createdAt, value: new Date(view.createdAt) },
        ...(view.expiresAt ? [{ key: SA.expiresAt, value: new Date(view.expiresAt) }] : []),
        { key: SA.metadata, value: metadataKeywords(view.metadata) },
      ]),
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    } as const;
    const waitMs = config.server.createWaitSeconds * 1000;
    /** No worker answered in time: the sandbox is accepted and will progress; report what we know. */
    const latestView = async (): Promise<SandboxView | undefined> => {
      const latest = (await temporal.openActor<MemoView>(workflowId, SANDBOX_WORKFLOW_TYPE))?.view;
      return latest && !latest.entrypointElided ? latest : latest && { ...view, status: latest.status };
    };

    const share = { cpuMillis: spec.resources.cpuMillis, memoryBytes: spec.resources.memoryBytes };
    if (opts.idempotencyKey || quotas.judgesSandboxes(caller)) {
      // The tenant's share first (429 and nothing made when over quota); idempotent for a repeated key.
      await quotas.reserve(caller, sandboxId, share);
      return answered(await startActor());
    }
    // Nothing to judge: the share is only recorded (a Signal), beside the start rather than before it.
    // Either may fail alone. A share whose actor never started is given back by the tenant actor's
    // check; a record that fails (Temporal refusing Signals for the whole call timeout) fails the
    // create like a start that timed out: the sandbox may run, listed, unrecorded until it ends.
    const [started, recorded] = await Promise.allSettled([startActor(), quotas.reserve(caller, sandboxId, share)]);
    if (started.status === 'rejected') throw started.reason;
    if (recorded.status === 'rejected') throw recorded.reason;
    return answered(started.value);

    /** The SDKs ask for endpoints and ping execd right after a create: this answer serves those too. */
    function answered(result: SandboxView): SandboxView {
      recent.put(result, mark);
      return result;
    }

    async function startActor(): Promise<SandboxView> {
      if (opts.member?.started && !opts.idempotencyKey) {
        // Thawed by its claim: the actor starts Running on the member, and nothing is left to wait for.
        // (With a key the actor may exist already — a repeated claim got the same member: judged below.)
        await temporal.call((client) => client.workflow.start<SandboxWorkflow>(SANDBOX_WORKFLOW_TYPE, startOptions));
        return view;
      }
      if (!opts.idempotencyKey && !opts.respondAsync) {
        // The common create: start the actor and wait for it to settle in one call (the Update rides in
        // its first workflow task). The id is new (random, or a pool member's), so no earlier run can
        // hold it. Timed out: if the actor exists its latest view is the answer, else the 504 is.
        try {
          return await temporal.call(
            (client) =>
              client.workflow.executeUpdateWithStart(awaitSettledUpdate, {
                args: [{ timeoutMs: waitMs }],
                startWorkflowOperation: new WithStartWorkflowOperation<SandboxWorkflow>(SANDBOX_WORKFLOW_TYPE, startOptions),
              }),
            { what: 'create', deadlineMs: waitMs + 5000 },
          );
        } catch (err) {
          if (!(err instanceof TideboxError && err.kind === 'TIMEOUT')) throw err;
          const latest = await latestView();
          if (!latest) throw err;
          return latest;
        }
      }
      await temporal.call(async (client) => {
        try {
          await client.workflow.start<SandboxWorkflow>(SANDBOX_WORKFLOW_TYPE, startOptions);
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError) {
            // Definitely not started (any other failure may hide a start that happened: the tenant actor's own check settles those).
            await quotas.release(tenant, sandboxId);
            throw new TideboxError('IDEMPOTENCY_CONFLICT', 'Idempotency-Key was already used for a sandbox that has since terminated', {
              cause: err,
            });
          }
          throw err;
        }
      });

      if (opts.idempotencyKey) {
        const existing = await temporal.openActor<MemoView>(workflowId, SANDBOX_WORKFLOW_TYPE);
        if (existing?.memo.requestHash !== requestHash) {
          throw new TideboxError('IDEMPOTENCY_CONFLICT', 'Idempotency-Key was already used with a different request body');
        }
        if (opts.respondAsync) return complete(existing.view);
      } else if (opts.respondAsync) {
        return view;
      }

      try {
        return await update(sandboxId, awaitSettledUpdate, [{ timeoutMs: waitMs }], 'create', waitMs + 5000);
      } catch (err) {
        if (!(err instanceof TideboxError && err.kind === 'TIMEOUT')) throw err;
        return (await latestView()) ?? view;
      }
    }
  }

  /**
   * One page of the caller's sandboxes: from the read projection when there is one and it has been
   * filled, else (and when it fails) from visibility. Either way each view is re-checked by `accept`.
   */
  async function list(caller: Caller, filter: ListFilter) {
    const tenant = caller.kind === 'tenant' ? caller.tenant : filter.tenant;
    const accept = (view: MemoView) =>
      canSee(caller, view.tenant) &&
      (tenant === undefined || view.tenant === tenant) &&
      view.status.state !== 'Terminated' &&
      (!filter.states.length || filter.states.includes(view.status.state)) &&
      Object.entries(filter.metadata).every(([k, v]) => view.metadata[k] === v);
    const skip = (filter.page - 1) * filter.pageSize;
    const projected =
      views &&
      (await listProjected(views.store, {
        tenant,
        states: filter.states,
        metadata: filter.metadata,
        offset: skip,
        limit: filter.pageSize,
      }));
    if (projected)
      return {
        items: await Promise.all(projected.views.filter(accept).map(complete)),
        pagination: pagination(filter.page, filter.pageSize, projected.total),
      };
    // Everything `accept` checks is in the query too (a tenant sees only its own: `tenant` is set), so
    // the count is the total and a newest-first window serves the page.
    const query = { type: SANDBOX_WORKFLOW_TYPE, tenant, states: filter.states, metadata: filter.metadata, excludeStates: ['Terminated'] };
    const total = await temporal.count(query);
    const found = skip >= total ? [] : await temporal.newest<MemoView>(query, accept, skip + filter.pageSize, total);
    const page = paginate(found, filter.page, filter.pageSize, Math.max(total, found.length));
    return { ...page, items: await Promise.all(page.items.map(complete)) };
  }

  /** After a failed query the projection is left alone this long: each LIST would wait for it again. */
  const PROJECTION_BACKOFF_MS = 30_000;
  let projectionFailedAt = -Infinity;

  /** The projection's page, or undefined when it is not filled yet or fails (reported; visibility answers). */
  async function listProjected(store: SandboxViewStore, query: ViewQuery) {
    if (Date.now() - projectionFailedAt < PROJECTION_BACKOFF_MS) return undefined;
    try {
      if (!(await store.isBackfilled())) return undefined;
      return await store.list(query);
    } catch (err) {
      projectionFailedAt = Date.now();
      views?.warn('sandbox views: LIST from the projection failed; reading visibility for 30 s', { error: (err as Error).message });
      return undefined;
    }
  }

  /** Live sandboxes restored from a snapshot (they run its image, so it cannot be deleted). */
  async function restoredFrom(tenant: string, snapshotId: string): Promise<string[]> {
    const views = await temporal.scan<SandboxView>(
      { type: SANDBOX_WORKFLOW_TYPE, tenant },
      (view) => view.snapshotId === snapshotId && view.status.state !== 'Terminated',
    );
    return views.map((v) => v.id);
  }

  async function remove(caller: Caller, sandboxId: string): Promise<void> {
    await find(caller, sandboxId);
    const waitMs = config.server.deleteWaitSeconds * 1000;
    await update(sandboxId, deleteUpdate, [{ waitMs }], 'delete', waitMs + 5000);
  }

  async function renew(caller: Caller, sandboxId: string, expiresAt: string): Promise<{ expiresAt: string }> {
    const view = await find(caller, sandboxId);
    // Answer the common mistakes here, from the memo, by the actor's own rule; the actor re-checks authoritatively.
    const verdict = judgeRenewal(view.expiresAt, expiresAt, Date.now(), config.sandbox);
    if (!verdict.ok) throw new TideboxError(verdict.kind, verdict.message);
    return update(sandboxId, renewUpdate, [{ expiresAt: verdict.expiresAt }], 'renewal');
  }

  async function patchMetadata(caller: Caller, sandboxId: string, patch: MetadataPatch): Promise<SandboxView> {
    const view = await find(caller, sandboxId);
    // Answer bad input here; the actor's validator re-checks against its own current metadata.
    const problems = metadataPatchProblems(view.metadata, patch);
    if (problems.length) throw new TideboxError('INVALID_PARAMETER', problems.join('; '));
    if (Object.keys(patch).length === 0) return complete(view);
    return update(sandboxId, patchMetadataUpdate, [patch], 'metadata patch');
  }

  /**
   * The sandbox's lifecycle history. While it lives, the actor answers a query (needs a worker);
   * after it ends, the workflow's result holds the history, readable for the namespace's retention.
   */
  async function events(caller: Caller, sandboxId: string): Promise<{ view: SandboxView; events: SandboxEvent[] }> {
    const workflowId = sandboxWorkflowId(sandboxId);
    const described = await temporal.describe(workflowId);
    const memo = described?.memo?.view as MemoView | undefined;
    if (!described || described.type !== SANDBOX_WORKFLOW_TYPE || !memo || !canSee(caller, memo.tenant)) throw sandboxNotFound(sandboxId);
    const handle = temporal.client.workflow.getHandle(workflowId);
    if (described.status.name === 'RUNNING')
      return { view: await complete(memo), events: await temporal.call(() => handle.query(eventsQuery)) };
    if (described.status.name === 'COMPLETED') {
      const outcome = await temporal.call(() => handle.result() as Promise<SandboxOutcome | SandboxView>);
      // Runs recorded before the history was returned ended with the bare view.
      return 'events' in outcome ? { view: outcome.view, events: outcome.events } : { view: outcome, events: [] };
    }
    // Terminated or failed by an operator: the memo still has the last published view (a long entrypoint left out).
    const { entrypointElided: _elided, ...view } = memo;
    return { view, events: [] };
  }

  return {
    create,
    get,
    reach,
    list,
    restoredFrom,
    delete: remove,
    renew,
    pause: async (caller: Caller, sandboxId: string): Promise<SandboxView> => {
      await find(caller, sandboxId);
      return update(sandboxId, pauseUpdate, [], 'pause');
    },
    resume: async (caller: Caller, sandboxId: string): Promise<SandboxView> => {
      await find(caller, sandboxId);
      return update(sandboxId, resumeUpdate, [], 'resume');
    },
    patchMetadata,
    events,
    /** Tell the actor a renew schedule is about to be made (its teardown then deletes it); refused once it is being deleted. */
    announceRenewSchedule: (sandboxId: string): Promise<SandboxView> =>
      update(sandboxId, announceRenewScheduleUpdate, [], 'renew schedule'),
  };
}

export type SandboxService = ReturnType<typeof createSandboxService>;
