/**
 * When a sandbox expires and how far it may be renewed: the one owner of that rule. The sandbox actor
 * judges every renewal with `judgeRenewal` (authoritatively, against its own current expiresAt and
 * the policy it was created with); the API answers common mistakes early through the same function
 * from the memo, and a renew schedule computes its next expiresAt with `scheduledExpiry`.
 *
 * The cap is rolling: a renewal may move expiresAt at most `maxTimeoutSeconds` past the moment of the
 * renewal (not past creation), so a sandbox that keeps being renewed lives on, but never more than
 * one maximum timeout ahead of now.
 */

/** The expiry policy a sandbox actor applies to renewals. */
export interface ExpiryPolicy {
  /** How far past the moment of a renewal expiresAt may be moved (seconds; sandbox.maxTimeoutSeconds). */
  maxTimeoutSeconds: number;
}

/** The policy of actors started before they carried their own (the configuration default then and now). */
export const DEFAULT_EXPIRY_POLICY: ExpiryPolicy = { maxTimeoutSeconds: 7 * 24 * 3600 };

export type RenewalVerdict =
  { ok: true; expiresAt: string } | { ok: false; kind: 'MANUAL_CLEANUP' | 'INVALID_EXPIRATION'; message: string };

/** The latest expiresAt a renewal at `now` may set. */
export const latestExpiry = (now: number, policy: ExpiryPolicy): number => now + policy.maxTimeoutSeconds * 1000;

const MANUAL_CLEANUP = 'sandbox was created for manual cleanup (no timeout); it has no expiration to renew';

/**
 * May a sandbox whose expiry is `current` (null = manual cleanup) be renewed to `requested` at `now`?
 * Monotonic (never earlier than the current expiresAt), in the future, and within the rolling cap.
 */
export function judgeRenewal(current: string | null, requested: string, now: number, policy: ExpiryPolicy): RenewalVerdict {
  if (current === null) return { ok: false, kind: 'MANUAL_CLEANUP', message: MANUAL_CLEANUP };
  const at = Date.parse(requested);
  if (!(at > now)) return { ok: false, kind: 'INVALID_EXPIRATION', message: 'expiresAt must be in the future' };
  if (at < Date.parse(current)) {
    return { ok: false, kind: 'INVALID_EXPIRATION', message: `expiresAt must not be earlier than the current expiresAt ${current}` };
  }
  const latest = latestExpiry(now, policy);
  if (at > latest) {
    return {
      ok: false,
      kind: 'INVALID_EXPIRATION',
      message: `expiresAt must not be later than ${new Date(latest).toISOString()} (a renewal extends at most ${policy.maxTimeoutSeconds} s past the time of renewal)`,
    };
  }
  return { ok: true, expiresAt: new Date(at).toISOString() };
}

/**
 * The expiresAt one run of a renew schedule asks for: `extendBySeconds` from now, never past `until`
 * nor past the cap; undefined when that would not move `current` forward (nothing to do).
 */
export function scheduledExpiry(
  current: string,
  now: number,
  extendBySeconds: number,
  until: string | undefined,
  policy: ExpiryPolicy,
): string | undefined {
  const target = Math.min(now + extendBySeconds * 1000, until ? Date.parse(until) : Infinity, latestExpiry(now, policy));
  return target > Date.parse(current) ? new Date(target).toISOString() : undefined;
}

/** Why a renew schedule's settings cannot work, or undefined. */
export function renewScheduleProblem(
  settings: { intervalSeconds: number; extendBySeconds: number; until?: string },
  now: number,
  policy: ExpiryPolicy,
): string | undefined {
  if (settings.extendBySeconds <= settings.intervalSeconds) {
    return 'extendBySeconds must be greater than intervalSeconds, or the sandbox expires between renewals';
  }
  if (settings.extendBySeconds > policy.maxTimeoutSeconds) {
    return `extendBySeconds must be at most ${policy.maxTimeoutSeconds} (a renewal extends at most that far past the time of renewal)`;
  }
  if (settings.until !== undefined && Date.parse(settings.until) <= now) return 'until must be in the future';
  return undefined;
}
