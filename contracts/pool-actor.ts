/** What the pool actor (`pool/<tenant>/<name>`) answers to. Names are recorded in histories: never rename one. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CapacitySpec, PoolView, PoolWorkflowInput } from '../core/pools';
import type { UsageLimits } from '../core/quotas';
import type { SandboxSpec } from '../core/sandbox';
import type { StartedWorkload } from './runtime';

export const POOL_WORKFLOW_TYPE = 'poolWorkflow';
export type PoolWorkflow = (input: PoolWorkflowInput) => Promise<void>;

/**
 * Take one ready member for a create: it is marked claimed (never handed out again) and its id —
 * the id the new sandbox gets — returned; null when none is ready (the create goes cold). `spec` is
 * what the pool's members are made with now (the member's own): the claim's sandbox runs exactly it.
 * `started`: a pool on its host's queue (input.onHost) thaws the member inside the claim and answers
 * its workload; absent, the sandbox actor adopts it (thaws it) itself.
 */
/**
 * A claim's answer: the member (null: none ready) and the spec it runs; `started` when the claim
 * thawed it, with `staleFrom` (ms since epoch): from then on the pool may judge the claim stale and
 * remove the member unless its sandbox actor is open — an actor started before has nothing to check.
 */
export interface ClaimAnswer {
  memberId: string | null;
  spec: SandboxSpec;
  started?: StartedWorkload;
  staleFrom?: number;
}
/**
 * `key`: the create's Idempotency-Key. A claim repeated with a key gets the member (or the miss) the
 * first one got, as long as the pool remembers it (a day, the last 1,000 keys): a client whose
 * answer was lost asks again and gets its own sandbox, not a second one.
 */
export const claimUpdate = defineUpdate<ClaimAnswer, [{ key?: string }?]>('claim');
/**
 * A claimed member whose create did not go ahead (e.g. over quota): it never ran user code, so it is
 * ready again — frozen again first if its claim thawed it (the ledger knows).
 */
export const unclaimSignal = defineSignal<[{ memberId: string }]>('unclaim');
/** The sandbox actor of a claimed member has started: it owns the container now (adopts it, or removes it), so the pool lets it go. */
export const adoptedSignal = defineSignal<[{ memberId: string }]>('adopted');
/**
 * New template and/or capacity (PUT): members of the old template drain. With `limits` (the caller's
 * quota), the pool first resizes its reservation in the tenant's quota through the tenant actor —
 * the pool is the only writer of its share after its create — and a refusal (QUOTA_EXCEEDED)
 * changes nothing. Changes are applied one at a time.
 */
export const configureUpdate = defineUpdate<
  PoolView,
  [{ template: Record<string, unknown>; spec: SandboxSpec; capacity: CapacitySpec; limits?: UsageLimits }]
>('configure');
/** The tenant actor's key this pool's share is reserved under (the tenant actor's check asks it). */
export const reservationQuery = defineQuery<string | null>('reservation');
/** DELETE: every unclaimed member drains, then the actor ends. */
export const deletePoolUpdate = defineUpdate<PoolView, []>('delete');
export const describePoolQuery = defineQuery<PoolView>('describe');
/** The spec members are made with now (env included: for the API's transparent claims only, never shown); null while deleting. */
export const specQuery = defineQuery<SandboxSpec | null>('spec');
/** Whether this member's container is still the pool's (the host's orphan sweep asks before removing one). */
export const holdsMemberQuery = defineQuery<boolean, [string]>('holdsMember');
