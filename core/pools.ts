import { TideboxError } from './errors';
import type { SandboxNetwork, SandboxSpec } from './sandbox';

/**
 * Warm pools: per tenant, a named set of sandboxes created ahead of demand from a template, frozen
 * until a create claims one. Pure rules here (capacity, what to warm and drain); the actor is
 * workflows/pool.ts, the API api/routes/pools.ts.
 */

export const POOL_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** extensions key that names the pool a create claims from (OpenSandbox's). */
export const POOL_REF_EXTENSION = 'poolRef';

/** A pool's sizes (OpenSandbox's capacitySpec; the request schema is the pools route's). */
export interface CapacitySpec {
  bufferMin: number;
  bufferMax: number;
  poolMin: number;
  poolMax: number;
}

/** Why a capacity cannot be used (bounds against each other and the server's cap), or undefined. */
export function capacityProblem(c: CapacitySpec, maxMembers: number): string | undefined {
  if (c.bufferMin > c.bufferMax) return 'capacitySpec.bufferMin must not exceed bufferMax';
  if (c.poolMin > c.poolMax) return 'capacitySpec.poolMin must not exceed poolMax';
  if (c.bufferMax > c.poolMax) return 'capacitySpec.bufferMax must not exceed poolMax';
  if (c.poolMax > maxMembers) return `capacitySpec.poolMax must be at most ${maxMembers} (pools.maxMembers on this server)`;
  return undefined;
}

export type MemberState = 'warming' | 'ready' | 'claimed' | 'draining';

export interface PoolMember {
  state: MemberState;
  /** Template generation it was made from: a PUT bumps it, and older ready members drain. */
  generation: number;
  /** When it entered this state (ms since epoch, workflow time). */
  since: number;
  /** Its claim thawed it (or tried to): it may be running, so it is never ready again as it is. */
  thawed?: boolean;
  /** What its start answered (container id, ports): a claim thaws it with one engine call. */
  started?: { containerId: string; network: SandboxNetwork };
}

export interface PoolStatus {
  /** Members that exist or are being made (draining ones excluded). */
  total: number;
  /** Claimed, waiting for their sandbox to take them over. */
  allocated: number;
  /** Ready to be claimed now. */
  available: number;
  /** Being made. */
  warming: number;
  draining: number;
}

export function poolStatus(members: Record<string, PoolMember>): PoolStatus {
  const count = (s: MemberState) => Object.values(members).filter((m) => m.state === s).length;
  const [warming, ready, claimed, draining] = [count('warming'), count('ready'), count('claimed'), count('draining')];
  return { total: warming + ready + claimed, allocated: claimed, available: ready, warming, draining };
}

/**
 * How many members to start warming now: enough that ready + warming reaches bufferMin (and the
 * pool poolMin), never past bufferMax of those or poolMax in all.
 */
export function membersToWarm(members: Record<string, PoolMember>, c: CapacitySpec): number {
  const s = poolStatus(members);
  const spare = s.available + s.warming;
  const want = Math.max(c.bufferMin - spare, c.poolMin - s.total, 0);
  return Math.max(0, Math.min(want, c.bufferMax - spare, c.poolMax - s.total - s.draining));
}

/** Ready members past bufferMax (newest kept), or of an older template generation: to drain. */
export function membersToDrain(members: Record<string, PoolMember>, c: CapacitySpec, generation: number): string[] {
  const ready = Object.entries(members).filter(([, m]) => m.state === 'ready');
  const stale = ready.filter(([, m]) => m.generation !== generation).map(([id]) => id);
  const current = ready.filter(([, m]) => m.generation === generation).sort((a, b) => a[1].since - b[1].since);
  const excess = current.slice(0, Math.max(0, current.length - c.bufferMax)).map(([id]) => id);
  return [...stale, ...excess];
}

export interface PoolView {
  name: string;
  tenant: string;
  /** The create request members are made from, as given (image, entrypoint, resourceLimits, …) but without env (see templateView). */
  template: Record<string, unknown>;
  capacitySpec: CapacitySpec;
  status: PoolStatus;
  createdAt: string;
  /** The host whose engine holds the members: only a create served for that host can claim one. */
  hostId?: string;
  /** Set once a DELETE was accepted: the pool drains and then ends. */
  deleting?: boolean;
}

/**
 * A template as views show it: without `env`, whose values may be secrets (a sandbox's view never
 * shows its env either). The members still get it: they are made from the pool's spec.
 */
export function templateView(template: Record<string, unknown>): Record<string, unknown> {
  const { env: _env, ...rest } = template;
  return rest;
}

/** What the pool actor is started with. */
export interface PoolWorkflowInput {
  tenant: string;
  namespace: string;
  name: string;
  hostId: string;
  createdAt: string;
  template: Record<string, unknown>;
  /** The normalised spec members are created with. */
  spec: SandboxSpec;
  capacity: CapacitySpec;
  /** How long a claimed member may wait for its sandbox actor before it is checked and, if none, destroyed. */
  claimTimeoutSeconds: number;
  /**
   * How long a deleted pool waits for its members' removal before it ends anyway (its host gone:
   * removals would wait for that host's worker for ever). What is left there carries the pool's
   * label, and the host's orphan sweep removes it when the host is back (no pool holds it). Absent
   * (pools started before): no bound.
   */
  drainTimeoutSeconds?: number;
  /**
   * The pool actor runs on its host's task queue (so that host's worker, which holds the engine, runs
   * its tasks) and thaws a member inside the claim with a local activity; its messaging activities go
   * to this shared queue. Absent (Kubernetes, and pools started before): it runs on the shared queue
   * and the sandbox actor thaws the member.
   */
  onHost?: { sharedQueue: string };
  /** After a claim, while a member is still ready, the replacement waits this long (pools.refillDelayMs). Absent (pools started before): at once. */
  refillDelayMs?: number;
  /** Whether members are frozen while they wait (Docker); pods cannot be, and wait running. Absent: frozen. */
  freeze?: boolean;
  /** The tenant actor's key for this pool's share of the quota (core/quotas.ts); absent for pools made before pools held quota. */
  reservation?: string;
  /** Present only when continuing as new. */
  carried?: {
    members: Record<string, PoolMember>;
    generation: number;
    deleting: boolean;
    claims: number;
    misses: number;
    /** When the delete was accepted (workflow time, ms). */
    deletingSince?: number;
    /** Claims made with an Idempotency-Key: the member each got (null: a miss), and when. */
    keyed?: Record<string, KeyedClaim>;
  };
}

/** A keyed claim's record; `memberId` undefined while the claim is under way. */
export interface KeyedClaim {
  at: number;
  memberId?: string | null;
}

export const poolWorkflowId = (tenant: string, name: string): string => `pool/${tenant}/${name}`;

/**
 * What the OpenSandbox SDKs send when their caller gave nothing (they always send an image, an
 * entrypoint, resource limits and env): a claim with these is not asking for something else.
 */
const SDK_DEFAULTS: Record<string, string[]> = {
  entrypoint: [JSON.stringify(['tail', '-f', '/dev/null'])],
  resourceLimits: [JSON.stringify({ cpu: '1', memory: '2Gi' })],
};
const isEmpty = (v: unknown) =>
  v === undefined ||
  v === null ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && Object.keys(v).length === 0);

/**
 * The create request a claim runs: the pool's template with the claim's own timeout and metadata.
 * Fields that shape the container are the template's; a claim may repeat them only unchanged (or
 * send them empty, or as the SDKs' defaults).
 */
export function claimRequest(template: Record<string, unknown>, body: Record<string, unknown>): Record<string, unknown> {
  const own = new Set(['timeout', 'metadata', 'extensions']);
  for (const [key, value] of Object.entries(body)) {
    if (own.has(key) || isEmpty(value) || SDK_DEFAULTS[key]?.includes(JSON.stringify(value))) continue;
    if (!(key in template) || JSON.stringify(template[key]) !== JSON.stringify(value))
      throw new TideboxError(
        'INVALID_PARAMETER',
        `${key} comes from the pool's template when extensions.${POOL_REF_EXTENSION} is set; omit it or give the template's value`,
      );
  }
  const extensions = { ...((body.extensions as Record<string, string> | undefined) ?? {}) };
  delete extensions[POOL_REF_EXTENSION];
  if (Object.keys(extensions).length)
    throw new TideboxError(
      'INVALID_PARAMETER',
      `extensions other than ${POOL_REF_EXTENSION} come from the pool's template: ${Object.keys(extensions).join(', ')}`,
    );
  const out: Record<string, unknown> = { ...template };
  if (body.timeout !== undefined) out.timeout = body.timeout;
  else delete out.timeout;
  if (body.metadata !== undefined) out.metadata = body.metadata;
  else delete out.metadata;
  return out;
}

/** A canonical JSON form: object keys sorted at every level, so equal specs built in any order compare equal. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );

/**
 * Whether a pool's members run exactly what a create asks for: every field of the spec but the
 * create's own timeout and metadata (a transparent claim gives the sandbox those two).
 */
export function runsAsAsked(member: SandboxSpec, asked: SandboxSpec): boolean {
  const container = ({ timeoutSeconds: _t, metadata: _m, ...rest }: SandboxSpec) => canonical(rest);
  return container(member) === container(asked);
}
