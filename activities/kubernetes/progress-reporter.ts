import type { RuntimeProgress } from '../../core/sandbox';

export const PROGRESS_REPEAT_MS = 10_000;

/**
 * Passes a waiting pod's reason on to the sandbox actor: a new reason at once, a new message for the
 * same reason (the scheduler's node counts change with the cluster) at most every
 * PROGRESS_REPEAT_MS, to bound the history. One report at a time, so they arrive in order; a failed
 * one is sent again with the next poll. Not awaited: a slow Temporal frontend must not delay the
 * wait's heartbeats.
 */
export function progressReporter(
  sandboxId: string,
  send: ((sandboxId: string, progress: RuntimeProgress) => Promise<void>) | undefined,
  warn: (msg: string, error: string) => void,
  now: () => number = Date.now,
) {
  let reported: (RuntimeProgress & { at: number }) | undefined;
  let inFlight = false;
  return ({ reason, message }: RuntimeProgress): void => {
    const changed = !reported || reason !== reported.reason || (message !== reported.message && now() - reported.at >= PROGRESS_REPEAT_MS);
    if (!send || !changed || inFlight) return;
    inFlight = true;
    void send(sandboxId, { reason, message })
      .then(
        () => (reported = { reason, message, at: now() }),
        (err: Error) => warn('reporting pod progress failed', err.message),
      )
      .finally(() => (inFlight = false));
  };
}
