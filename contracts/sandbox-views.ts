import type { Sinks } from '@temporalio/workflow';
import type { SandboxView } from '../core/sandbox';

/**
 * How a sandbox actor tells the read projection (platform/sandbox-views.ts) its view, beside its
 * memo: a workflow sink, so nothing of it enters the history. `at` is the workflow time of the task
 * that published it (later tasks, and continued runs, publish later times), so a write that arrives
 * late never overwrites a newer one. The worker writes it before the task completes.
 */
export interface SandboxViewSinks extends Sinks {
  sandboxViews: {
    publish(view: SandboxView, at: number): void;
  };
}
