import { randomUUID } from 'node:crypto';
import { TypedSearchAttributes, type UpdateDefinition } from '@temporalio/common';
import { SA } from '../../contracts/search-attributes';
import { deleteSnapshotUpdate, retrySnapshotUpdate, SNAPSHOT_WORKFLOW_TYPE, type SnapshotWorkflow } from '../../contracts/snapshot-actor';
import type { Config } from '../../core/config';
import { notOnKubernetes, TideboxError } from '../../core/errors';
import {
  initialSnapshotView,
  type SnapshotState,
  type SnapshotView,
  type SnapshotWorkflowInput,
  snapshotWorkflowId,
} from '../../core/snapshots';
import { type Caller, canSee } from '../../core/tenants';
import type { TemporalGateway } from './gateway';
import type { QuotaService } from './quotas';
import { snapshotReservationKey } from '../../core/quotas';
import type { SandboxService } from './sandboxes';
import { paginate } from './visibility';

export interface SnapshotFilter {
  tenant?: string;
  sandboxId?: string;
  states: SnapshotState[];
  page: number;
  pageSize: number;
}

const snapshotNotFound = (id: string) => new TideboxError('SNAPSHOT_NOT_FOUND', `snapshot ${id} not found`);

/**
 * Snapshots over their actors (`snapshot/<id>`): reads come from the memo and the visibility store
 * (no worker needed); create starts the actor; retry and delete are Updates it validates against its
 * own state.
 */
export function createSnapshotService(temporal: TemporalGateway, config: Config, sandboxes: SandboxService, quotas: QuotaService) {
  const update = <Ret>(snapshotId: string, def: UpdateDefinition<Ret, []>, what: string) =>
    temporal.update(snapshotWorkflowId(snapshotId), def, [], {
      what: `snapshot ${what}`,
      deadlineMs: config.server.temporalCallTimeoutSeconds * 1000,
      notFound: () => snapshotNotFound(snapshotId),
      inTransition: () =>
        new TideboxError('SNAPSHOT_INVALID_STATE', `snapshot ${snapshotId} changed state while the ${what} was in flight; retry it`),
    });

  /** The snapshot if the caller may see it; a foreign or deleted one is 404 exactly like a missing one. */
  async function get(caller: Caller, snapshotId: string): Promise<SnapshotView> {
    const found = await temporal.openActor<SnapshotView>(snapshotWorkflowId(snapshotId), SNAPSHOT_WORKFLOW_TYPE);
    if (!found || !canSee(caller, found.view.tenant)) throw snapshotNotFound(snapshotId);
    return found.view;
  }

  return {
    get,

    /** Start a snapshot of a Running (or Paused) sandbox the caller can see; answers at once (Creating). */
    async create(caller: Caller, sandboxId: string, name: string | undefined): Promise<SnapshotView> {
      const sandbox = await sandboxes.get(caller, sandboxId);
      if (config.runtime.type === 'kubernetes') {
        throw notOnKubernetes('taking snapshots');
      }
      if (config.runtime.type === 'noop')
        throw new TideboxError('NOT_SUPPORTED_BY_RUNTIME', 'taking snapshots is not supported on the noop runtime (it has no workloads)');
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
      // A place among the tenant's snapshots first (429 over maxSnapshots); an operator's snapshot is recorded, not judged.
      const place = { kind: 'snapshot' as const, cpuMillis: 0, memoryBytes: 0 };
      const key = snapshotReservationKey(input.snapshotId);
      if (caller.kind === 'tenant') await quotas.reserve(caller, key, place);
      else await quotas.record(input.tenant, key, place);
      await temporal.call((client) =>
        client.workflow.start<SnapshotWorkflow>(SNAPSHOT_WORKFLOW_TYPE, {
          workflowId: snapshotWorkflowId(input.snapshotId),
          taskQueue: config.temporal.taskQueue,
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
    },

    async list(caller: Caller, filter: SnapshotFilter) {
      const tenant = caller.kind === 'tenant' ? caller.tenant : filter.tenant;
      const views = await temporal.scan<SnapshotView>(
        { type: SNAPSHOT_WORKFLOW_TYPE, tenant, states: filter.states },
        (view) =>
          canSee(caller, view.tenant) &&
          (tenant === undefined || view.tenant === tenant) &&
          (!filter.states.length || filter.states.includes(view.status.state)) &&
          (filter.sandboxId === undefined || view.sandboxId === filter.sandboxId),
      );
      return paginate(views, filter.page, filter.pageSize);
    },

    /** Failed → Creating, resuming at the failed step. */
    async retry(caller: Caller, snapshotId: string): Promise<SnapshotView> {
      await get(caller, snapshotId);
      return update(snapshotId, retrySnapshotUpdate, 'retry');
    },

    /** Remove the snapshot and its image; 409 while Creating or while a live sandbox runs it. */
    async delete(caller: Caller, snapshotId: string): Promise<void> {
      const view = await get(caller, snapshotId);
      if (view.status.state === 'Creating') {
        throw new TideboxError('SNAPSHOT_INVALID_STATE', 'the snapshot is still being created; delete it once it is Ready or Failed');
      }
      const users = await sandboxes.restoredFrom(view.tenant, snapshotId);
      if (users.length) {
        throw new TideboxError(
          'SNAPSHOT_IN_USE',
          `sandbox ${users.slice(0, 3).join(', ')}${users.length > 3 ? ' and others' : ''} still runs this snapshot; delete it first`,
        );
      }
      await update(snapshotId, deleteSnapshotUpdate, 'delete');
    },
  };
}

export type SnapshotService = ReturnType<typeof createSnapshotService>;
