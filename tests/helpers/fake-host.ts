import { ApplicationFailure, Context } from '@temporalio/activity';
import type { MessagingActivities } from '../../contracts/messaging';
import type { SandboxRuntime } from '../../contracts/runtime';
import { withOneStepCreate } from '../../activities/common';
import { ErrorCodes, type ErrorKind } from '../../core/errors';

export type RuntimeStep = keyof SandboxRuntime;
export type MessagingStep = keyof MessagingActivities;

/** One activity the fakes saw: started, finished, failed (as scripted) or cancelled while hanging. */
export interface Call {
  sandboxId: string;
  step: RuntimeStep | MessagingStep;
  outcome: 'started' | 'done' | 'failed' | 'cancelled';
  input: unknown;
}

/** What one sandbox's fake runtime does instead of succeeding at once. */
export interface Script {
  /** Steps that fail (non-retryable) with this catalogued kind and message, every time. */
  fail?: Partial<Record<RuntimeStep, { kind: ErrorKind; message: string }>>;
  /** Steps that heartbeat until cancelled. */
  hang?: RuntimeStep[];
}

/**
 * In-process stand-ins for the runtime and messaging ports, scripted per sandbox, for workflow tests:
 * the real actor code runs on a real Temporal server against these. Every call is recorded.
 */
export class FakeHost {
  readonly calls: Call[] = [];
  /** Sandboxes the tenant actor's reconciliation should find open (sandboxesOpen). */
  readonly openSandboxes = new Set<string>();
  private readonly scripts = new Map<string, Script>();

  script(sandboxId: string, script: Script): void {
    this.scripts.set(sandboxId, script);
  }

  callsOf(sandboxId: string, outcome: Call['outcome'] = 'started'): Array<Call['step']> {
    return this.calls.filter((c) => c.sandboxId === sandboxId && c.outcome === outcome).map((c) => c.step);
  }

  private async act<T>(sandboxId: string, step: RuntimeStep | MessagingStep, input: unknown, result: () => T): Promise<T> {
    this.calls.push({ sandboxId, step, outcome: 'started', input });
    const script = this.scripts.get(sandboxId) ?? {};
    const failure = script.fail?.[step as RuntimeStep];
    if (failure) {
      this.calls.push({ sandboxId, step, outcome: 'failed', input });
      throw ApplicationFailure.create({ type: ErrorCodes[failure.kind].code, message: failure.message, nonRetryable: true });
    }
    if (script.hang?.includes(step as RuntimeStep)) {
      const ctx = Context.current();
      try {
        for (;;) {
          ctx.heartbeat();
          await ctx.sleep(100); // rejects once the activity is cancelled
        }
      } catch (err) {
        this.calls.push({ sandboxId, step, outcome: 'cancelled', input });
        throw err;
      }
    }
    this.calls.push({ sandboxId, step, outcome: 'done', input });
    return result();
  }

  runtime(): SandboxRuntime {
    // The one-step create calls the two recorded steps, as the real runtimes do.
    return withOneStepCreate<Omit<SandboxRuntime, 'createAndStartContainer'>>({
      ensureContainer: (input) => this.act(input.sandboxId, 'ensureContainer', input, () => ({ containerId: `c-${input.sandboxId}` })),
      startContainer: (input) =>
        this.act(input.sandboxId, 'startContainer', input, () => ({
          containerId: `c-${input.sandboxId}`,
          network: { hostNetwork: false, ports: { '8080': 32080 }, host: '127.0.0.1' },
        })),
      adoptContainer: (input) =>
        this.act(input.sandboxId, 'adoptContainer', input, () => ({
          containerId: `c-${input.sandboxId}`,
          network: { hostNetwork: false, ports: { '8080': 32080 }, host: '127.0.0.1' },
        })),
      pauseContainer: (input) => this.act(input.sandboxId, 'pauseContainer', input, () => undefined),
      resumeContainer: (input) => this.act(input.sandboxId, 'resumeContainer', input, () => undefined),
      removeContainers: (input) => this.act(input.sandboxId, 'removeContainers', input, () => ({ removed: 1 })),
    });
  }

  messaging(): MessagingActivities {
    return {
      acquireMount: (input) => this.act(input.sandboxId, 'acquireMount', input, () => ({ hostPath: `/mounts/${input.key}` })),
      releaseMount: (input) => this.act(input.sandboxId, 'releaseMount', input, () => undefined),
      deleteRenewSchedule: (input) => this.act(input.sandboxId, 'deleteRenewSchedule', input, () => ({ deleted: false })),
      renewFromSchedule: (input) => this.act(input.sandboxId, 'renewFromSchedule', input, () => ({ outcome: 'sandbox-gone' as const })),
      sandboxesOpen: async (input) => ({ open: input.sandboxIds.filter((id) => this.openSandboxes.has(id)) }),
      releaseQuota: (input) => this.act(input.key, 'releaseQuota', input, () => undefined),
      reserveQuota: async () => ({ admitted: true, usage: { sandboxes: 0, cpuMillis: 0, memoryBytes: 0 } }),
    };
  }
}
