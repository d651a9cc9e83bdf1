/**
 * Activities on the shared task queue that talk to other actors through the Temporal client (a
 * workflow cannot send an Update or manage a Schedule itself). Implemented by activities/messaging.ts.
 * Method names are activity types recorded in histories: never rename one.
 */
import type { MountWorkflowInput } from '../core/mounts';
import type { Reservation, UsageLimits } from '../core/quotas';
import type { ReserveOutcome } from './tenant-actor';
import type { RenewRunInput, RenewRunOutcome } from '../core/sandbox';

export interface MessagingActivities {
  /**
   * Join a shared mount's holders, starting its actor if there is none. Resolves with the host path
   * once mounted; a mount failure comes back as a non-retryable MOUNT_FAILED.
   */
  acquireMount(input: MountWorkflowInput & { sandboxId: string }): Promise<{ hostPath: string }>;
  /** Leave a shared mount's holders. Idempotent. */
  releaseMount(input: { hostId: string; key: string; sandboxId: string }): Promise<void>;
  /** Remove the sandbox's renew schedule, if it has one. Idempotent. */
  deleteRenewSchedule(input: { sandboxId: string }): Promise<{ deleted: boolean }>;
  /** One run of a renew schedule: one renewal through the sandbox actor. */
  renewFromSchedule(input: RenewRunInput): Promise<RenewRunOutcome>;
  /**
   * Which of these reservation keys (sandbox ids, `snapshot:<id>`, a pool's key) still have an open
   * actor (the tenant actor gives the others' shares back). With the tenant, its sandbox ids are
   * looked up in one visibility listing of its open sandbox actors, and only those not listed are
   * asked of their actors (a describe each); without, every key is asked.
   */
  sandboxesOpen(input: { sandboxIds: string[]; tenant?: string }): Promise<{ open: string[] }>;
  /**
   * Give a reservation back to the tenant actor (its `release` Signal, sent by the client): what a
   * sandbox actor's teardown runs as a local activity, so the release and the end of the teardown
   * share one workflow task. Idempotent; no tenant actor (none was ever needed): nothing was held.
   */
  releaseQuota(input: { tenant: string; key: string }): Promise<void>;
  /**
   * A reservation in the tenant's quota through its actor's `reserve` Update (a pool resizing its
   * share: `replace`), starting the actor if there is none. The verdict, admitted or not.
   */
  reserveQuota(input: {
    tenant: string;
    key: string;
    reservation: Reservation;
    limits: UsageLimits;
    replace: boolean;
  }): Promise<ReserveOutcome>;
}
