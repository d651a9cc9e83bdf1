import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import {
  type ClaimAnswer,
  claimUpdate,
  configureUpdate,
  deletePoolUpdate,
  POOL_WORKFLOW_TYPE,
  type PoolWorkflow,
  specQuery,
  unclaimSignal,
} from '../../contracts/pool-actor';
import { SA } from '../../contracts/search-attributes';
import { type Config, runtimeHostId } from '../../core/config';
import { TideboxError } from '../../core/errors';
import {
  type CapacitySpec,
  poolStatus,
  type PoolView,
  type PoolWorkflowInput,
  poolWorkflowId,
  runsAsAsked,
  templateView,
} from '../../core/pools';
import { poolLimits, poolReservation, poolReservationKey, type UsageLimits } from '../../core/quotas';
import { hostTaskQueue, type SandboxSpec } from '../../core/sandbox';
import { type Caller, canSee, type TenantCaller } from '../../core/tenants';
import type { TemporalGateway } from './gateway';
import type { QuotaService } from './quotas';
import { sharedReads } from '../shared-reads';
import { actorTurns } from './turns';

const poolNotFound = (name: string) => new TideboxError('POOL_NOT_FOUND', `pool ${name} not found`);
const poolExists = (name: string, cause?: unknown) =>
  new TideboxError('POOL_EXISTS', `pool ${name} already exists; change it with PUT or delete it first`, { cause });

/**
 * Warm pools over their actors (`pool/<tenant>/<name>`): reads from the memo, changes and claims as
 * Updates. A pool belongs to the tenant that made it; an admin reads every tenant's.
 */
export function createPoolService(temporal: TemporalGateway, config: Config, quotas: QuotaService) {
  const callMs = config.server.temporalCallTimeoutSeconds * 1000;
  /** Claims this process has in flight per pool actor (see ./turns.ts). */
  const claimTurns = actorTurns(config.server, (id) => `pool ${id.slice('pool/'.length)}`);
  const update = <Ret, Args extends unknown[]>(
    workflowId: string,
    name: string,
    def: Parameters<typeof temporal.update<Ret, Args>>[1],
    args: Args,
    what: string,
  ) =>
    temporal.update<Ret, Args>(workflowId, def, args, {
      what,
      deadlineMs: callMs,
      notFound: () => poolNotFound(name),
      inTransition: () => new TideboxError('INVALID_STATE', `pool ${name} changed while the ${what} was in flight; retry it`),
    });

  /** The pool's view if the caller may see it: another tenant's pool is 404, like a missing one. */
  async function find(caller: Caller, tenant: string, name: string): Promise<PoolView> {
    const found = await temporal.openActor<PoolView>(poolWorkflowId(tenant, name), POOL_WORKFLOW_TYPE);
    if (!found || !canSee(caller, found.view.tenant)) throw poolNotFound(name);
    return found.view;
  }

  /** The tenant a pool is looked up in: a tenant's own; an admin names it (`?tenant=`). */
  const tenantOf = (caller: Caller, tenant: string | undefined): string => {
    if (caller.kind === 'tenant') return caller.tenant;
    if (!tenant) throw new TideboxError('INVALID_PARAMETER', "an admin key names the pool's tenant (?tenant=)");
    return tenant;
  };

  async function create(caller: TenantCaller, name: string, template: Record<string, unknown>, spec: SandboxSpec, capacity: CapacitySpec) {
    const input: PoolWorkflowInput = {
      tenant: caller.tenant,
      namespace: caller.namespace,
      name,
      hostId: runtimeHostId(config),
      createdAt: new Date().toISOString(),
      template,
      spec,
      capacity,
      claimTimeoutSeconds: config.pools.claimTimeoutSeconds,
      drainTimeoutSeconds: config.pools.drainTimeoutSeconds,
      ...(config.pools.refillDelayMs ? { refillDelayMs: config.pools.refillDelayMs } : {}),
      // Pods cannot be frozen: on Kubernetes members wait running (their template's entrypoint only).
      freeze: config.runtime.type !== 'kubernetes',
      // Docker: the actor runs beside its host's engine, and a claim thaws its member in one task.
      ...(config.runtime.type !== 'kubernetes' ? { onHost: { sharedQueue: config.temporal.taskQueue } } : {}),
      // This create's own key (a nonce): a refused or losing create gives back only its own share.
      reservation: poolReservationKey(poolWorkflowId(caller.tenant, name), randomUUID()),
    };
    const view: PoolView = {
      name,
      tenant: caller.tenant,
      template: templateView(template),
      capacitySpec: capacity,
      status: poolStatus({}),
      createdAt: input.createdAt,
      hostId: input.hostId,
    };
    // The pool holds poolMax sandboxes' worth of the tenant's quota while it exists (429 otherwise),
    // reserved before its actor starts; the actor gives it back as it ends.
    const key = input.reservation!;
    // A name in use is 409 whatever the quota says (the start below is what decides a race).
    if (await temporal.openActor<PoolView>(poolWorkflowId(caller.tenant, name), POOL_WORKFLOW_TYPE)) throw poolExists(name);
    await quotas.reserve(caller, key, poolReservation(spec.resources, capacity.poolMax));
    await temporal.call(async (client) => {
      try {
        await client.workflow.start<PoolWorkflow>(POOL_WORKFLOW_TYPE, {
          workflowId: poolWorkflowId(caller.tenant, name),
          taskQueue: input.onHost ? hostTaskQueue(config.temporal.taskQueue, input.hostId) : config.temporal.taskQueue,
          args: [input],
          memo: { view },
          typedSearchAttributes: new TypedSearchAttributes([
            { key: SA.tenant, value: caller.tenant },
            { key: SA.createdAt, value: new Date(view.createdAt) },
          ]),
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          // Surely not started: give this create's share back (the pool of that name holds a key of its
          // own). Any other failure may have started it; if not, the tenant actor's check gives it back.
          await quotas.release(caller.tenant, key).catch(() => undefined);
          throw poolExists(name, err);
        }
        throw err;
      }
    });
    return view;
  }

  async function list(caller: Caller, tenant?: string): Promise<PoolView[]> {
    const only = caller.kind === 'tenant' ? caller.tenant : tenant;
    const views = await temporal.scan<PoolView>(
      { type: POOL_WORKFLOW_TYPE, ...(only ? { tenant: only } : {}) },
      (v) => canSee(caller, v.tenant) && (only === undefined || v.tenant === only) && !v.deleting,
    );
    return views.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.name.localeCompare(b.name));
  }

  async function get(caller: Caller, name: string, tenant?: string): Promise<PoolView> {
    const view = await find(caller, tenantOf(caller, tenant), name);
    if (view.deleting) throw poolNotFound(name);
    return view;
  }

  async function configure(
    caller: TenantCaller,
    name: string,
    template: Record<string, unknown>,
    spec: SandboxSpec,
    capacity: CapacitySpec,
  ) {
    await get(caller, name);
    // The pool actor resizes its own share (judged against the caller's limits) before it changes:
    // 429 leaves it as it was, and concurrent PUTs change share and settings in the same order.
    const limits = poolLimits(quotas.quotaOf(caller));
    return update<PoolView, [{ template: Record<string, unknown>; spec: SandboxSpec; capacity: CapacitySpec; limits?: UsageLimits }]>(
      poolWorkflowId(caller.tenant, name),
      name,
      configureUpdate,
      [{ template, spec, capacity, limits }],
      'pool change',
    );
  }

  async function remove(caller: Caller, name: string, tenant?: string): Promise<void> {
    const owner = tenantOf(caller, tenant);
    await get(caller, name, owner);
    try {
      await update<PoolView, []>(poolWorkflowId(owner, name), name, deletePoolUpdate, [], 'pool delete');
    } catch (err) {
      if (!(err instanceof TideboxError && err.kind === 'TIMEOUT')) throw err;
      // A pool on its host's queue runs only on that host's worker: none answered a delete (which
      // needs no I/O) within the call deadline, so the host is gone. End the actor here; its members
      // carry its label, and that host's sweep removes them when it is back (no pool holds them);
      // the tenant actor's check gives the pool's share back (its actor no longer runs).
      await temporal.call((client) =>
        client.workflow
          .getHandle(poolWorkflowId(owner, name))
          .terminate('DELETE: the pool host worker did not answer within the call deadline'),
      );
    }
  }

  /** The template a claim from this pool runs (as views show it) and the host holding its members (the caller's own pool; 404 otherwise). */
  async function template(caller: TenantCaller, name: string): Promise<{ template: Record<string, unknown>; hostId: string }> {
    const view = await get(caller, name);
    return { template: view.template, hostId: view.hostId ?? runtimeHostId(config) };
  }

  /**
   * One ready member's id (the id the new sandbox takes; null when none is ready), and the spec the
   * pool's members are made with. With the create's Idempotency-Key, a repeat gets the first answer.
   */
  async function claim(caller: TenantCaller, name: string, key?: string): Promise<ClaimAnswer> {
    const id = poolWorkflowId(caller.tenant, name);
    const args: [{ key?: string }?] = key === undefined ? [] : [{ key }];
    // A burst of creates on one pool meets at its actor: a few claims in flight at a time, the rest queued here.
    return claimTurns.run(id, () => update(id, name, claimUpdate, args, 'claim'));
  }

  /**
   * A claimed member whose create was refused before its sandbox actor started: ready again (it never
   * ran anything of the claim's). Best effort: if the word is lost, the claim times out and the
   * member is destroyed instead.
   */
  async function unclaim(tenant: string, name: string, memberId: string): Promise<void> {
    await temporal
      .call((client) => client.workflow.getHandle(poolWorkflowId(tenant, name)).signal(unclaimSignal, { memberId }))
      .catch(() => undefined);
  }

  /** A tenant's pools on this host with the spec their members run, kept briefly (pools.transparentClaims). */
  const poolSpecs = sharedReads(2000, 10_000, async (tenant: string, caller: TenantCaller) => {
    const here = (await list(caller)).filter((p) => (p.hostId ?? runtimeHostId(config)) === runtimeHostId(config));
    const specs = await Promise.all(
      here.map(async ({ name }) => {
        const spec = await temporal
          .call((client) => client.workflow.getHandle(poolWorkflowId(tenant, name)).query(specQuery), { deadlineMs: 2000 })
          .catch(() => null); // no answer in time: not a candidate now
        return spec ? [{ name, spec }] : [];
      }),
    );
    return specs.flat();
  });

  /** The caller's pool on this host whose members run exactly `asked` (but for its timeout and metadata), if any. */
  async function matching(caller: TenantCaller, asked: SandboxSpec): Promise<string | undefined> {
    return (await poolSpecs(caller.tenant, caller)).find((p) => runsAsAsked(p.spec, asked))?.name;
  }

  return { create, list, get, configure, delete: remove, template, claim, unclaim, matching };
}

export type PoolService = ReturnType<typeof createPoolService>;
