import { createHash, randomUUID } from 'node:crypto';
import {
  Client,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  isGrpcServiceError,
} from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes } from '@temporalio/common';
import { Config, runtimeHostId } from '../core/config';
import { errorKindOf, TideboxError } from '../core/errors';
import { MetadataPatch, metadataKeywords, metadataPatchProblems } from '../core/metadata';
import type { MountView } from '../core/mounts';
import type { RenewScheduleRequest } from '../core/schemas';
import {
  initialView,
  RenewRunInput,
  renewScheduleId,
  SandboxEvent,
  SANDBOX_STATES,
  SandboxOutcome,
  SandboxSpec,
  SandboxState,
  SandboxView,
  SandboxWorkflowInput,
  sandboxWorkflowId,
} from '../core/sandbox';
import { SA } from '../core/search-attributes';
import { Caller, canSee } from '../core/tenants';
import type { renewWorkflow } from '../workflows/renew';
import type { sandboxWorkflow } from '../workflows/sandbox';
import {
  awaitSettledUpdate,
  deleteUpdate,
  eventsQuery,
  patchMetadataUpdate,
  pauseUpdate,
  renewUpdate,
  resumeUpdate,
} from '../workflows/sandbox';

/** Most sandboxes one LIST scans before paging in memory; beyond this a visibility store with ORDER BY is needed. */
const LIST_SCAN_LIMIT = 10_000;

export interface ListFilter {
  /** Admin callers only: one tenant's sandboxes (all tenants when absent). */
  tenant?: string;
  states: SandboxState[];
  metadata: Record<string, string>;
  page: number;
  pageSize: number;
}

/**
 * The one place the API talks to Temporal. Reads (get/list) use only the server's memo and
 * visibility store, so they work while no worker runs; writes are Updates on the sandbox actor.
 */
export class SandboxService {
  constructor(
    private readonly client: Client,
    private readonly config: Config,
  ) {}

  async create(
    caller: Caller,
    spec: SandboxSpec,
    opts: { idempotencyKey?: string; respondAsync: boolean },
  ): Promise<SandboxView> {
    if (caller.kind !== 'tenant') throw new TideboxError('FORBIDDEN', "admin keys act on existing sandboxes; create sandboxes with a tenant's key");
    const { tenant, namespace } = caller;
    const sandboxId = opts.idempotencyKey ? idempotentSandboxId(tenant, opts.idempotencyKey) : randomUUID();
    // Hash without credentials (the memo keeps the hash); the mount keys already stand for them.
    // No pvc volumes hash like a request made before they existed, so a retry across the upgrade still matches.
    const { pvcs, imageAuth, ...rest } = spec;
    const hashable = {
      ...rest,
      // The registry password stays out of the hash (kept in the memo): the user name tells requests apart.
      ...(imageAuth ? { imageAuth: { username: imageAuth.username } } : {}),
      ...(pvcs?.length ? { pvcs } : {}),
      ossfs: spec.ossfs.map(({ source: { accessKeyId: _id, accessKeySecret: _secret, ...src }, ...v }) => ({ ...v, source: src })),
    };
    const requestHash = createHash('sha256').update(JSON.stringify(hashable)).digest('hex');
    const input: SandboxWorkflowInput = {
      sandboxId,
      tenant,
      namespace,
      hostId: runtimeHostId(this.config),
      createdAt: new Date().toISOString(),
      spec,
      requestHash,
    };
    const view = initialView(input);
    const workflowId = sandboxWorkflowId(sandboxId);

    await this.call(async () => {
      try {
        await this.client.workflow.start<typeof sandboxWorkflow>('sandboxWorkflow', {
          workflowId,
          taskQueue: this.config.temporal.taskQueue,
          args: [input],
          memo: { view, requestHash },
          typedSearchAttributes: new TypedSearchAttributes([
            { key: SA.tenant, value: tenant },
            { key: SA.state, value: view.status.state },
            { key: SA.createdAt, value: new Date(view.createdAt) },
            ...(view.expiresAt ? [{ key: SA.expiresAt, value: new Date(view.expiresAt) }] : []),
            { key: SA.metadata, value: metadataKeywords(view.metadata) },
          ]),
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new TideboxError('IDEMPOTENCY_CONFLICT', 'Idempotency-Key was already used for a sandbox that has since terminated');
        }
        throw err;
      }
    });

    if (opts.idempotencyKey) {
      const existing = await this.describe(workflowId);
      if (existing?.memo.requestHash !== requestHash) {
        throw new TideboxError('IDEMPOTENCY_CONFLICT', 'Idempotency-Key was already used with a different request body');
      }
      if (opts.respondAsync) return existing.view;
    } else if (opts.respondAsync) {
      return view;
    }

    const waitMs = this.config.server.createWaitSeconds * 1000;
    try {
      return await this.client.withDeadline(Date.now() + waitMs + 5000, () =>
        this.client.workflow.getHandle(workflowId).executeUpdate(awaitSettledUpdate, { args: [{ timeoutMs: waitMs }] }),
      );
    } catch (err) {
      if (!isDeadlineExceeded(err)) throw mapTemporalError(err, sandboxId);
      // No worker answered in time: the sandbox is accepted and will progress; report what we know.
      return (await this.describe(workflowId))?.view ?? view;
    }
  }

  /** The sandbox if the caller may see it; another tenant's sandbox is 404, exactly like a missing one. */
  async get(caller: Caller, sandboxId: string): Promise<SandboxView> {
    const found = await this.describe(sandboxWorkflowId(sandboxId));
    if (!found || !canSee(caller, found.view.tenant) || found.view.status.state === 'Terminated') throw notFound(sandboxId);
    return found.view;
  }

  async list(caller: Caller, filter: ListFilter) {
    const tenant = caller.kind === 'tenant' ? caller.tenant : filter.tenant;
    const clauses = [`WorkflowType = 'sandboxWorkflow'`, `ExecutionStatus = 'Running'`];
    if (tenant !== undefined) clauses.push(`${SA.tenant.name} = ${quote(tenant)}`);
    if (filter.states.length) clauses.push(`${SA.state.name} IN (${filter.states.map(quote).join(', ')})`);
    for (const kw of metadataKeywords(filter.metadata)) clauses.push(`${SA.metadata.name} = ${quote(kw)}`);

    const views: SandboxView[] = [];
    await this.call(async () => {
      for await (const execution of this.client.workflow.list({ query: clauses.join(' AND ') })) {
        const view = execution.memo?.view as SandboxView | undefined;
        // Visibility is eventually consistent: re-check every filter against the memo itself.
        if (!view || !canSee(caller, view.tenant) || (tenant !== undefined && view.tenant !== tenant) || view.status.state === 'Terminated') continue;
        if (filter.states.length && !filter.states.includes(view.status.state)) continue;
        if (Object.entries(filter.metadata).some(([k, v]) => view.metadata[k] !== v)) continue;
        views.push(view);
        if (views.length >= LIST_SCAN_LIMIT) break;
      }
    });
    return paginate(views, filter.page, filter.pageSize);
  }

  /** Live sandboxes restored from a snapshot (they run its image, so it cannot be deleted). */
  async sandboxesFromSnapshot(tenant: string, snapshotId: string): Promise<string[]> {
    const ids: string[] = [];
    await this.call(async () => {
      const query = `WorkflowType = 'sandboxWorkflow' AND ExecutionStatus = 'Running' AND ${SA.tenant.name} = ${quote(tenant)}`;
      for await (const execution of this.client.workflow.list({ query })) {
        const view = execution.memo?.view as SandboxView | undefined;
        if (view?.snapshotId === snapshotId && view.status.state !== 'Terminated') ids.push(view.id);
        if (ids.length >= LIST_SCAN_LIMIT) break;
      }
    });
    return ids;
  }

  async delete(caller: Caller, sandboxId: string): Promise<void> {
    await this.get(caller, sandboxId);
    const waitMs = this.config.server.deleteWaitSeconds * 1000;
    try {
      await this.client.withDeadline(Date.now() + waitMs + 5000, () =>
        this.client.workflow.getHandle(sandboxWorkflowId(sandboxId)).executeUpdate(deleteUpdate, { args: [{ waitMs }] }),
      );
    } catch (err) {
      if (isDeadlineExceeded(err)) throw new TideboxError('TIMEOUT', 'no worker accepted the delete in time; retry the request');
      throw mapTemporalError(err, sandboxId);
    }
  }

  async renew(caller: Caller, sandboxId: string, expiresAt: string): Promise<{ expiresAt: string }> {
    const view = await this.get(caller, sandboxId);
    const requested = Date.parse(expiresAt);
    const maxExpiresAt = new Date(Date.now() + this.config.sandbox.maxTimeoutSeconds * 1000).toISOString();
    // Answer the common mistakes here, from the memo; the actor's validator re-checks authoritatively.
    if (view.expiresAt === null) throw new TideboxError('MANUAL_CLEANUP', 'sandbox was created for manual cleanup (no timeout); it has no expiration to renew');
    if (requested <= Date.now()) throw new TideboxError('INVALID_EXPIRATION', 'expiresAt must be in the future');
    if (requested < Date.parse(view.expiresAt)) throw new TideboxError('INVALID_EXPIRATION', `expiresAt must not be earlier than the current expiresAt ${view.expiresAt}`);
    if (requested > Date.parse(maxExpiresAt)) throw new TideboxError('INVALID_EXPIRATION', `expiresAt must not be later than ${maxExpiresAt} (maximum sandbox lifetime)`);
    const normalized = new Date(requested).toISOString();
    try {
      return await this.client.withDeadline(Date.now() + this.config.server.temporalCallTimeoutSeconds * 1000, () =>
        this.client.workflow.getHandle(sandboxWorkflowId(sandboxId)).executeUpdate(renewUpdate, {
          args: [{ expiresAt: normalized, maxExpiresAt }],
        }),
      );
    } catch (err) {
      if (isDeadlineExceeded(err)) throw new TideboxError('TIMEOUT', 'no worker accepted the renewal in time; retry the request');
      throw mapTemporalError(err, sandboxId);
    }
  }

  async pause(caller: Caller, sandboxId: string): Promise<SandboxView> {
    await this.get(caller, sandboxId);
    return this.update(sandboxId, 'pause', (h) => h.executeUpdate(pauseUpdate));
  }

  async resume(caller: Caller, sandboxId: string): Promise<SandboxView> {
    await this.get(caller, sandboxId);
    return this.update(sandboxId, 'resume', (h) => h.executeUpdate(resumeUpdate));
  }

  async patchMetadata(caller: Caller, sandboxId: string, patch: MetadataPatch): Promise<SandboxView> {
    const view = await this.get(caller, sandboxId);
    // Answer bad input here; the actor's validator re-checks against its own current metadata.
    const problems = metadataPatchProblems(view.metadata, patch);
    if (problems.length) throw new TideboxError('INVALID_PARAMETER', problems.join('; '));
    if (Object.keys(patch).length === 0) return view;
    return this.update(sandboxId, 'metadata patch', (h) => h.executeUpdate(patchMetadataUpdate, { args: [patch] }));
  }

  /**
   * The sandbox's lifecycle history. While it lives, the actor answers a query (needs a worker);
   * after it ends, the workflow's result holds the history, readable for the namespace's retention.
   */
  async events(caller: Caller, sandboxId: string): Promise<{ view: SandboxView; events: SandboxEvent[] }> {
    const handle = this.client.workflow.getHandle(sandboxWorkflowId(sandboxId));
    const described = await this.describeOr(handle, () => notFound(sandboxId));
    const memoView = described.memo?.view as SandboxView | undefined;
    if (described.type !== 'sandboxWorkflow' || !memoView || !canSee(caller, memoView.tenant)) throw notFound(sandboxId);
    if (described.status.name === 'RUNNING') {
      const events = await this.call(() => handle.query(eventsQuery));
      return { view: memoView, events };
    }
    if (described.status.name === 'COMPLETED') {
      const outcome = await this.call(() => handle.result() as Promise<SandboxOutcome | SandboxView>);
      // Runs recorded before the history was returned ended with the bare view.
      if ('events' in outcome) return { view: outcome.view, events: outcome.events };
      return { view: outcome, events: [] };
    }
    // Terminated or failed by an operator: the memo still has the last published view.
    return { view: memoView, events: [] };
  }

  /** Type, status and times of a workflow this tenant owns (any id a response returned); admins see all. */
  async workflow(caller: Caller, workflowId: string) {
    const handle = this.client.workflow.getHandle(workflowId);
    const d = await this.describeOr(handle, () => workflowNotFound(workflowId));
    if (!canSee(caller, d.typedSearchAttributes.get(SA.tenant))) throw workflowNotFound(workflowId);
    let failure: string | undefined;
    if (d.status.name === 'FAILED' || d.status.name === 'TIMED_OUT') {
      failure = await this.call(async () => {
        try {
          await handle.result();
          return undefined;
        } catch (err) {
          if (err instanceof WorkflowFailedError) return err.cause?.message ?? err.message;
          throw err;
        }
      });
    }
    return {
      workflowId: d.workflowId,
      runId: d.runId,
      type: d.type,
      status: d.status.name,
      taskQueue: d.taskQueue,
      startTime: d.startTime.toISOString(),
      closeTime: d.closeTime?.toISOString(),
      historyLength: d.historyLength,
      failure,
    };
  }

  /** Create or replace the sandbox's renew schedule (Temporal Schedule `renew/<sandboxId>`). */
  async putRenewSchedule(caller: Caller, sandboxId: string, req: RenewScheduleRequest) {
    const view = await this.get(caller, sandboxId);
    // The schedule belongs to the sandbox's tenant, also when an admin sets it up.
    const tenant = view.tenant;
    if (view.expiresAt === null) {
      throw new TideboxError('MANUAL_CLEANUP', 'sandbox was created for manual cleanup (no timeout); there is nothing to renew');
    }
    if (view.status.state === 'Failed') {
      throw new TideboxError('INVALID_STATE', 'sandbox has failed; it is kept only until it expires or is deleted, so it is not renewed');
    }
    if (req.extendBySeconds <= req.intervalSeconds) {
      throw new TideboxError('INVALID_PARAMETER', 'extendBySeconds must be greater than intervalSeconds, or the sandbox expires between renewals');
    }
    if (req.extendBySeconds > this.config.sandbox.maxTimeoutSeconds) {
      throw new TideboxError('INVALID_PARAMETER', `extendBySeconds must be at most ${this.config.sandbox.maxTimeoutSeconds} (maximum sandbox lifetime)`);
    }
    if (req.until !== undefined && Date.parse(req.until) <= Date.now()) {
      throw new TideboxError('INVALID_PARAMETER', 'until must be in the future');
    }
    const scheduleId = renewScheduleId(sandboxId);
    const until = req.until === undefined ? undefined : new Date(Date.parse(req.until)).toISOString();
    const args: RenewRunInput = { sandboxId, tenant, extendBySeconds: req.extendBySeconds, ...(until ? { until } : {}) };
    const options = {
      scheduleId,
      spec: { intervals: [{ every: req.intervalSeconds * 1000 }], ...(until ? { endAt: new Date(until) } : {}) },
      action: {
        type: 'startWorkflow' as const,
        workflowType: 'renewWorkflow',
        workflowId: scheduleId,
        taskQueue: this.config.temporal.taskQueue,
        args: [args] as [RenewRunInput],
        typedSearchAttributes: new TypedSearchAttributes([{ key: SA.tenant, value: tenant }]),
        workflowExecutionTimeout: 5 * 60_000,
      },
      // A run stuck on a dead worker must not block the next tick: only the newest renewal matters.
      policies: { overlap: ScheduleOverlapPolicy.TERMINATE_OTHER, catchupWindow: Math.max(60, req.intervalSeconds) * 1000 },
      memo: { tenant, intervalSeconds: req.intervalSeconds, extendBySeconds: req.extendBySeconds, ...(until ? { until } : {}) },
      typedSearchAttributes: new TypedSearchAttributes([{ key: SA.tenant, value: tenant }]),
    };
    await this.call(async () => {
      try {
        await this.client.schedule.create<typeof renewWorkflow>(options);
        return;
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      }
      // Replace: a schedule's memo cannot be updated, so recreate it with the new settings.
      try {
        await this.client.schedule.getHandle(scheduleId).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err; // a concurrent PUT deleted it first
      }
      try {
        await this.client.schedule.create<typeof renewWorkflow>(options);
      } catch (err) {
        if (err instanceof ScheduleAlreadyRunning) {
          throw new TideboxError('INVALID_STATE', 'a concurrent request replaced the renew schedule; read it or retry');
        }
        throw err;
      }
    });
    return this.getRenewSchedule(caller, sandboxId);
  }

  async getRenewSchedule(caller: Caller, sandboxId: string) {
    const view = await this.get(caller, sandboxId);
    const d = await this.call(async () => {
      try {
        return await this.client.schedule.getHandle(renewScheduleId(sandboxId)).describe();
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) throw scheduleNotFound(sandboxId);
        throw err;
      }
    });
    const memo = (d.memo ?? {}) as { tenant?: string; intervalSeconds?: number; extendBySeconds?: number; until?: string };
    if (memo.tenant !== view.tenant) throw scheduleNotFound(sandboxId);
    const last = d.info.recentActions.at(-1);
    return {
      scheduleId: d.scheduleId,
      intervalSeconds: memo.intervalSeconds,
      extendBySeconds: memo.extendBySeconds,
      until: memo.until,
      nextRunAt: d.info.nextActionTimes[0]?.toISOString(),
      lastRunAt: last?.takenAt.toISOString(),
      lastRunWorkflowId: last?.action.workflow.workflowId,
      runs: d.info.numActionsTaken,
    };
  }

  async deleteRenewSchedule(caller: Caller, sandboxId: string): Promise<void> {
    await this.getRenewSchedule(caller, sandboxId);
    await this.call(async () => {
      try {
        await this.client.schedule.getHandle(renewScheduleId(sandboxId)).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
    });
  }

  /** The caller's mount actors that are still running (a completed one has unmounted); admins see all, or one tenant's. */
  async mounts(caller: Caller, tenantFilter?: string): Promise<MountView[]> {
    const tenant = caller.kind === 'tenant' ? caller.tenant : tenantFilter;
    const views: MountView[] = [];
    await this.call(async () => {
      let query = `WorkflowType = 'mountWorkflow' AND ExecutionStatus = 'Running'`;
      if (tenant !== undefined) query += ` AND ${SA.tenant.name} = ${quote(tenant)}`;
      for await (const execution of this.client.workflow.list({ query })) {
        const view = execution.memo?.view as MountView | undefined;
        if (view && canSee(caller, view.tenant) && (tenant === undefined || view.tenant === tenant)) views.push(view);
        if (views.length >= LIST_SCAN_LIMIT) break;
      }
    });
    return views.sort((a, b) => a.key.localeCompare(b.key));
  }

  /** Sandboxes by state and failed workflows by type, from visibility (for metrics). */
  async counts(): Promise<{
    byState: Partial<Record<SandboxState, number>>;
    workflowFailures: Array<{ type: string; status: string; count: number }>;
  }> {
    return this.call(async () => {
      const byState: Partial<Record<SandboxState, number>> = {};
      const states = SANDBOX_STATES.filter((s) => s !== 'Terminated');
      await Promise.all(
        states.map(async (state) => {
          const { count } = await this.client.workflow.count(
            `WorkflowType = 'sandboxWorkflow' AND ExecutionStatus = 'Running' AND ${SA.state.name} = ${quote(state)}`,
          );
          byState[state] = count;
        }),
      );
      const workflowFailures: Array<{ type: string; status: string; count: number }> = [];
      await Promise.all(
        ['sandboxWorkflow', 'renewWorkflow'].flatMap((type) =>
          ['Failed', 'TimedOut'].map(async (status) => {
            const { count } = await this.client.workflow.count(`WorkflowType = ${quote(type)} AND ExecutionStatus = ${quote(status)}`);
            workflowFailures.push({ type, status, count });
          }),
        ),
      );
      return { byState, workflowFailures };
    });
  }

  /** Send an Update to a sandbox actor, bounded in time, with its failures mapped to HTTP errors. */
  private async update<T>(
    sandboxId: string,
    what: string,
    fn: (handle: ReturnType<Client['workflow']['getHandle']>) => Promise<T>,
  ): Promise<T> {
    try {
      return await this.client.withDeadline(Date.now() + this.config.server.temporalCallTimeoutSeconds * 1000, () =>
        fn(this.client.workflow.getHandle(sandboxWorkflowId(sandboxId))),
      );
    } catch (err) {
      if (isDeadlineExceeded(err)) throw new TideboxError('TIMEOUT', `no worker accepted the ${what} in time; retry the request`);
      throw mapTemporalError(err, sandboxId);
    }
  }

  /** Describe a workflow (open or closed), throwing `missing()` when there is none. */
  private describeOr(handle: ReturnType<Client['workflow']['getHandle']>, missing: () => TideboxError) {
    return this.call(async () => {
      try {
        return await handle.describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw missing();
        throw err;
      }
    });
  }

  /** The actor's memo, or undefined when there is no such workflow or it has closed. */
  private async describe(workflowId: string): Promise<{ view: SandboxView; memo: Record<string, unknown> } | undefined> {
    return this.call(async () => {
      try {
        const d = await this.client.workflow.getHandle(workflowId).describe();
        const view = d.memo?.view as SandboxView | undefined;
        if (d.status.name !== 'RUNNING' || !view) return undefined;
        return { view, memo: d.memo ?? {} };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    });
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    return boundedCall(this.client, this.config, fn);
  }
}

/** Bound a call into Temporal in time and turn transport failures into 503/504s. */
export async function boundedCall<T>(client: Client, config: Config, fn: () => Promise<T>): Promise<T> {
  try {
    return await client.withDeadline(Date.now() + config.server.temporalCallTimeoutSeconds * 1000, fn);
  } catch (err) {
    if (err instanceof TideboxError) throw err;
    throw mapTemporalError(err);
  }
}

/** Newest first (ties by id), then one page, with the contract's pagination block. */
export function paginate<T extends { createdAt: string; id: string }>(items: T[], page: number, pageSize: number) {
  const sorted = [...items].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.id.localeCompare(b.id));
  const totalItems = sorted.length;
  const totalPages = Math.ceil(totalItems / pageSize);
  const start = (page - 1) * pageSize;
  return {
    items: sorted.slice(start, start + pageSize),
    pagination: { page, pageSize, totalItems, totalPages, hasNextPage: page < totalPages },
  };
}

/** Same tenant + key → same sandbox id, so a retried POST can never make a second sandbox. */
export function idempotentSandboxId(tenant: string, key: string): string {
  const h = createHash('sha256').update(`${tenant}\0${key}`).digest('hex');
  // Shape it as a UUID (version nibble 5-like, variant 10xx) so ids look alike whichever way they were made.
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A string literal in Temporal's visibility query language. */
export function quote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

const notFound = (sandboxId: string) => new TideboxError('NOT_FOUND', `sandbox ${sandboxId} not found`);
const workflowNotFound = (workflowId: string) => new TideboxError('WORKFLOW_NOT_FOUND', `workflow ${workflowId} not found`);
const scheduleNotFound = (sandboxId: string) =>
  new TideboxError('SCHEDULE_NOT_FOUND', `sandbox ${sandboxId} has no renew schedule`);

export function isDeadlineExceeded(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e) && e.code === 4 /* DEADLINE_EXCEEDED */) return true;
    if ((e as { code?: unknown }).code === 4) return true;
  }
  return false;
}

export function mapTemporalError(err: unknown, sandboxId?: string): Error {
  if (err instanceof TideboxError) return err;
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    const kind = errorKindOf(err.cause.type);
    if (kind) return new TideboxError(kind, err.cause.message);
  }
  if (err instanceof WorkflowNotFoundError && sandboxId) return notFound(sandboxId);
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e)) {
      if (e.code === 5 /* NOT_FOUND */ && sandboxId) return notFound(sandboxId);
      if (e.code === 3 /* INVALID_ARGUMENT */) return new TideboxError('INVALID_PARAMETER', `rejected by the workflow service: ${e.details}`);
      if (e.code === 4 /* DEADLINE_EXCEEDED */) return new TideboxError('TIMEOUT', 'the workflow service did not answer in time; retry the request');
      if (e.code === 8 /* RESOURCE_EXHAUSTED */ || e.code === 14 /* UNAVAILABLE */) {
        return new TideboxError('BACKEND_UNAVAILABLE', 'the workflow service is unavailable or overloaded; retry shortly');
      }
    }
  }
  return err instanceof Error ? err : new Error(String(err));
}
