import { randomUUID } from 'node:crypto';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import type { Config } from '../core/config';
import { TideboxError } from '../core/errors';
import { SA } from '../core/search-attributes';
import { initialSnapshotView, SNAPSHOT_STATES, SnapshotState, SnapshotView, SnapshotWorkflowInput, snapshotWorkflowId } from '../core/snapshots';
import { Caller, canSee } from '../core/tenants';
import type { snapshotWorkflow } from '../workflows/snapshot';
import { deleteSnapshotUpdate, retrySnapshotUpdate } from '../workflows/snapshot';
import { boundedCall, isDeadlineExceeded, mapTemporalError, paginate, quote, SandboxService } from './temporal';

const LIST_SCAN_LIMIT = 10_000;

export interface SnapshotFilter {
  tenant?: string;
  sandboxId?: string;
  states: SnapshotState[];
  page: number;
  pageSize: number;
}

const notFound = (id: string) => new TideboxError('SNAPSHOT_NOT_FOUND', `snapshot ${id} not found`);

/**
 * Snapshots over Temporal: each is a SnapshotWorkflow actor (`snapshot/<id>`). Reads come from its
 * memo and the visibility store (no worker needed); create starts the actor; retry and delete are
 * Updates it validates against its own state.
 */
export class SnapshotService {
  constructor(
    private readonly client: Client,
    private readonly config: Config,
    private readonly sandboxes: SandboxService,
  ) {}

  /** Start a snapshot of a Running (or Paused) sandbox the caller can see; answers at once (Creating). */
  async create(caller: Caller, sandboxId: string, name: string | undefined): Promise<SnapshotView> {
    const sandbox = await this.sandboxes.get(caller, sandboxId);
    if (this.config.runtime.type === 'kubernetes') {
      throw new TideboxError('NOT_SUPPORTED_BY_RUNTIME', 'snapshots are not supported on the Kubernetes pod runtime (see docs/kubernetes.md)');
    }
    if (sandbox.status.state !== 'Running' && sandbox.status.state !== 'Paused') {
      throw new TideboxError('INVALID_STATE', `sandbox is ${sandbox.status.state}; only a Running or Paused sandbox can be snapshotted`);
    }
    const input: SnapshotWorkflowInput = {
      snapshotId: randomUUID(),
      // The snapshot belongs to the sandbox's tenant, also when an admin takes it.
      tenant: sandbox.tenant,
      sandboxId,
      hostId: sandbox.hostId,
      ...(name ? { name } : {}),
      createdAt: new Date().toISOString(),
    };
    const view = initialSnapshotView(input);
    await boundedCall(this.client, this.config, () =>
      this.client.workflow.start<typeof snapshotWorkflow>('snapshotWorkflow', {
        workflowId: snapshotWorkflowId(input.snapshotId),
        taskQueue: this.config.temporal.taskQueue,
        args: [input],
        memo: { view },
        typedSearchAttributes: new TypedSearchAttributes([
          { key: SA.tenant, value: input.tenant },
          { key: SA.state, value: view.status.state },
          { key: SA.createdAt, value: new Date(input.createdAt) },
        ]),
      }),
    );
    return view;
  }

  /** The snapshot if the caller may see it; a foreign or deleted one is 404 exactly like a missing one. */
  async get(caller: Caller, snapshotId: string): Promise<SnapshotView> {
    const view = await boundedCall(this.client, this.config, async () => {
      try {
        const d = await this.client.workflow.getHandle(snapshotWorkflowId(snapshotId)).describe();
        return d.type === 'snapshotWorkflow' && d.status.name === 'RUNNING' ? (d.memo?.view as SnapshotView | undefined) : undefined;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    });
    if (!view || !canSee(caller, view.tenant)) throw notFound(snapshotId);
    return view;
  }

  async list(caller: Caller, filter: SnapshotFilter) {
    const tenant = caller.kind === 'tenant' ? caller.tenant : filter.tenant;
    const clauses = [`WorkflowType = 'snapshotWorkflow'`, `ExecutionStatus = 'Running'`];
    if (tenant !== undefined) clauses.push(`${SA.tenant.name} = ${quote(tenant)}`);
    if (filter.states.length) clauses.push(`${SA.state.name} IN (${filter.states.map(quote).join(', ')})`);
    const views: SnapshotView[] = [];
    await boundedCall(this.client, this.config, async () => {
      for await (const execution of this.client.workflow.list({ query: clauses.join(' AND ') })) {
        const view = execution.memo?.view as SnapshotView | undefined;
        // Visibility is eventually consistent: re-check every filter against the memo.
        if (!view || !canSee(caller, view.tenant) || (tenant !== undefined && view.tenant !== tenant)) continue;
        if (filter.states.length && !filter.states.includes(view.status.state)) continue;
        if (filter.sandboxId !== undefined && view.sandboxId !== filter.sandboxId) continue;
        views.push(view);
        if (views.length >= LIST_SCAN_LIMIT) break;
      }
    });
    return paginate(views, filter.page, filter.pageSize);
  }

  /** Failed → Creating, resuming at the failed step. */
  async retry(caller: Caller, snapshotId: string): Promise<SnapshotView> {
    await this.get(caller, snapshotId);
    return this.update(snapshotId, 'retry', (h) => h.executeUpdate(retrySnapshotUpdate));
  }

  /** Remove the snapshot and its image; 409 while Creating or while a live sandbox runs it. */
  async delete(caller: Caller, snapshotId: string): Promise<void> {
    const view = await this.get(caller, snapshotId);
    if (view.status.state === 'Creating') {
      throw new TideboxError('SNAPSHOT_INVALID_STATE', 'the snapshot is still being created; delete it once it is Ready or Failed');
    }
    const users = await this.sandboxes.sandboxesFromSnapshot(view.tenant, snapshotId);
    if (users.length) {
      throw new TideboxError('SNAPSHOT_IN_USE', `sandbox ${users.slice(0, 3).join(', ')}${users.length > 3 ? ' and others' : ''} still runs this snapshot; delete it first`);
    }
    await this.update(snapshotId, 'delete', (h) => h.executeUpdate(deleteSnapshotUpdate));
  }

  private async update<T>(snapshotId: string, what: string, fn: (h: ReturnType<Client['workflow']['getHandle']>) => Promise<T>): Promise<T> {
    try {
      return await this.client.withDeadline(Date.now() + this.config.server.temporalCallTimeoutSeconds * 1000, () =>
        fn(this.client.workflow.getHandle(snapshotWorkflowId(snapshotId))),
      );
    } catch (err) {
      if (isDeadlineExceeded(err)) throw new TideboxError('TIMEOUT', `no worker accepted the snapshot ${what} in time; retry the request`);
      const mapped = mapTemporalError(err);
      throw mapped instanceof TideboxError && mapped.code === 'SANDBOX::NOT_FOUND' ? notFound(snapshotId) : mapped;
    }
  }
}

/** The `state` query parameter(s): repeated and/or comma-separated; unknown values are a 400. */
export function parseSnapshotStates(raw: string | string[] | undefined): SnapshotState[] {
  const states = [raw ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
  const unknown = states.filter((s) => !(SNAPSHOT_STATES as readonly string[]).includes(s));
  if (unknown.length) throw new TideboxError('INVALID_PARAMETER', `unknown snapshot state ${unknown.join(', ')}; expected one of ${SNAPSHOT_STATES.join(', ')}`);
  return states as SnapshotState[];
}
