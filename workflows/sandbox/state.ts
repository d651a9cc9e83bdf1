import { proxySinks, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { SA } from '../../contracts/search-attributes';
import type { SandboxViewSinks } from '../../contracts/sandbox-views';
import { DEFAULT_EXPIRY_POLICY, type ExpiryPolicy } from '../../core/expiry';
import { metadataKeywords } from '../../core/metadata';
import {
  firstEvents,
  initialView,
  memoView,
  type EventActor,
  type RuntimeProgress,
  type SandboxCarriedState,
  type SandboxEvent,
  type SandboxOutcome,
  type SandboxState,
  type SandboxView,
  type SandboxWorkflowInput,
} from '../../core/sandbox';
import { startedWith } from './versions';

const { sandboxViews } = proxySinks<SandboxViewSinks>();

/** The history keeps this many entries; the first one (acceptance) always stays. */
const MAX_EVENTS = 200;

export type PendingOp = NonNullable<SandboxCarriedState['pendingOp']>;

/**
 * The sandbox actor's state: its public view, its bounded history, and what the main loop still has
 * to act on (a delete, a container exit, an accepted pause or resume). Handlers change it; the loop
 * waits on `generation`, which every change the loop must notice bumps. Plain JSON throughout, so a
 * continue-as-new carries all of it.
 */
export class SandboxActorState {
  readonly view: SandboxView;
  readonly events: SandboxEvent[];
  readonly expiry: ExpiryPolicy;
  deleteRequested: boolean;
  deletedBy: EventActor = 'api';
  /** Bumped on every change the wait loop must notice. */
  generation = 0;
  runtimeExit: SandboxCarriedState['runtimeExit'];
  pendingOp: PendingOp | undefined;
  /** A renew schedule was announced: teardown deletes it (always, for actors that are not told). */
  renewScheduled: boolean;

  constructor(readonly input: SandboxWorkflowInput) {
    const carried: SandboxCarriedState = input.carried ?? {
      view: initialView(input),
      events: firstEvents(input),
      deleteRequested: false,
    };
    this.view = carried.view;
    this.events = carried.events;
    this.deleteRequested = carried.deleteRequested;
    this.runtimeExit = carried.runtimeExit;
    this.pendingOp = carried.pendingOp;
    this.renewScheduled = carried.renewScheduled ?? false;
    this.expiry = input.expiry ?? DEFAULT_EXPIRY_POLICY;
  }

  get state(): SandboxState {
    return this.view.status.state;
  }

  /**
   * Everything GET/LIST read, in full every time: a continued-as-new run starts with none of it. The
   * read projection LIST uses gets the whole view (no history event: a sink), at this task's time.
   */
  publish(): void {
    const { view } = this;
    this.project();
    upsertMemo({ view: memoView(view), requestHash: this.input.requestHash });
    upsertSearchAttributes([
      { key: SA.tenant, value: view.tenant },
      { key: SA.state, value: view.status.state },
      { key: SA.createdAt, value: new Date(view.createdAt) },
      { key: SA.expiresAt, value: view.expiresAt ? new Date(view.expiresAt) : null },
      { key: SA.metadata, value: metadataKeywords(view.metadata) },
    ]);
  }

  /** The view to the read projection only (no command): a fresh run, whose memo its starter wrote. */
  project(): void {
    sandboxViews.publish(this.view, Date.now());
  }

  record(event: SandboxEvent): void {
    this.events.push(event);
    if (this.events.length > MAX_EVENTS) this.events.splice(1, this.events.length - MAX_EVENTS);
  }

  transition(state: SandboxState, actor: EventActor, reason?: string, message?: string): void {
    const at = new Date().toISOString();
    this.view.status = { state, lastTransitionAt: at, ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
    this.record({ at, state, actor, ...(reason ? { reason } : {}), ...(message ? { message } : {}) });
    this.generation++;
    this.publish();
  }

  /** A renewal the validator accepted. A renew schedule renews every few seconds to minutes: one history entry per run of renewals. */
  renew(expiresAt: string, actor: 'api' | 'schedule'): void {
    this.view.expiresAt = expiresAt;
    const last = this.events[this.events.length - 1];
    const previous = last?.reason === 'renewed' && last.actor === actor ? (last.renewals ?? 1) : 0;
    if (previous > 0) this.events.pop();
    const renewals = previous + 1;
    this.record({
      at: new Date().toISOString(),
      state: this.view.status.state,
      actor,
      reason: 'renewed',
      message: `${renewals} renewal${renewals > 1 ? 's' : ''} in a row; expiresAt ${expiresAt}`,
      renewals,
    });
    this.generation++;
    this.publish();
  }

  /** Why the workload is still Pending, as its runtime reports it: one history entry per reason. */
  showProgress({ reason, message }: RuntimeProgress): void {
    this.view.status = { ...this.view.status, reason, message };
    // A changing message for the same reason (the scheduler's node counts) replaces the entry.
    const last = this.events[this.events.length - 1];
    if (last?.state === 'Pending' && last.actor === 'runtime' && last.reason === reason) this.events.pop();
    this.record({ at: new Date().toISOString(), state: 'Pending', actor: 'runtime', reason, message });
    this.publish();
  }

  requestDelete(by: EventActor): void {
    if (this.deleteRequested) return;
    this.deleteRequested = true;
    this.deletedBy = by;
    this.generation++;
  }

  isAlive(): boolean {
    return !this.deleteRequested && this.state !== 'Stopping' && this.state !== 'Terminated';
  }

  isExpired(): boolean {
    return this.view.expiresAt !== null && Date.now() >= Date.parse(this.view.expiresAt);
  }

  /** Milliseconds until expiry (0 when due); undefined for a manual-cleanup sandbox. */
  untilExpiry(): number | undefined {
    return this.view.expiresAt === null ? undefined : Math.max(0, Date.parse(this.view.expiresAt) - Date.now());
  }

  /** Whether a renew schedule may exist: announced, or the actor is one that is never told. */
  mayHaveRenewSchedule(): boolean {
    return this.renewScheduled || !startedWith(this.input, 'renew-schedules-announced');
  }

  /** The container died and the loop has not yet moved the sandbox to Failed. */
  exitPending(): boolean {
    return this.runtimeExit !== undefined && this.runtimeExit.containerId === this.view.containerId;
  }

  /** How the state reads in a refusal: a sandbox being deleted says so, whatever its state. */
  describeState(): string {
    return this.deleteRequested && this.state !== 'Terminated' ? 'being deleted' : this.state;
  }

  carried(): SandboxCarriedState {
    const { view, events, deleteRequested, runtimeExit, pendingOp } = this;
    return { view, events, deleteRequested, runtimeExit, pendingOp, ...(this.renewScheduled ? { renewScheduled: true as const } : {}) };
  }

  outcome(): SandboxOutcome {
    return { view: this.view, events: this.events };
  }
}
