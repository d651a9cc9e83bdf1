/**
 * What the sandbox actor (`sandbox/<sandboxId>`) answers to. The names are recorded in workflow
 * histories: never rename one, add a new message instead.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MetadataPatch } from '../core/metadata';
import type { RuntimeProgress, SandboxEvent, SandboxOutcome, SandboxView, SandboxWorkflowInput } from '../core/sandbox';

export const SANDBOX_WORKFLOW_TYPE = 'sandboxWorkflow';
export type SandboxWorkflow = (input: SandboxWorkflowInput) => Promise<SandboxOutcome>;

export const describeQuery = defineQuery<SandboxView>('describe');
export const eventsQuery = defineQuery<SandboxEvent[]>('events');

/** Resolves once the sandbox has left Pending, or after `timeoutMs`; returns the view either way. */
export const awaitSettledUpdate = defineUpdate<SandboxView, [{ timeoutMs: number }]>('awaitSettled');

/**
 * Move expiresAt. The caller sends what it asks for; the actor judges it by its own expiry policy
 * (core/expiry.ts). Older API processes also sent a `maxExpiresAt`, which is ignored.
 */
export interface RenewRequest {
  expiresAt: string;
  actor?: 'api' | 'schedule';
}
export const renewUpdate = defineUpdate<{ expiresAt: string }, [RenewRequest]>('renew');

/** Starts teardown; resolves when Terminated or after `waitMs`. */
export const deleteUpdate = defineUpdate<SandboxView, [{ waitMs: number }]>('delete');
/** Accepts a pause (Running → Pausing) and returns at once; the actor then freezes the workload → Paused. */
export const pauseUpdate = defineUpdate<SandboxView, []>('pause');
/** Accepts a resume (Paused → Resuming) and returns at once; the actor then thaws the workload → Running. */
export const resumeUpdate = defineUpdate<SandboxView, []>('resume');
/**
 * Sent before a renew schedule is made for the sandbox: the actor notes that its teardown must delete
 * one. Refused once the sandbox is being deleted (the schedule would outlive it).
 */
export const announceRenewScheduleUpdate = defineUpdate<SandboxView, []>('announceRenewSchedule');
/** JSON merge patch of the metadata (null deletes a key); returns the new view. */
export const patchMetadataUpdate = defineUpdate<SandboxView, [MetadataPatch]>('patchMetadata');

/** What a runtime's watcher reports when a sandbox's workload stopped on its own. */
export interface RuntimeExitReport {
  containerId: string;
  exitCode: number;
  /** Why, when there is more to say than the exit code (e.g. the pod was deleted). */
  message?: string;
}
/** Sent by the host's exit watcher when the sandbox's container stopped without Tidebox stopping it. */
export const runtimeExitedSignal = defineSignal<[RuntimeExitReport]>('runtimeExited');

/**
 * Sent by the provisioning activity while the workload waits for something outside Tidebox (a pod
 * unschedulable for lack of nodes, an image being pulled): shown in the Pending status and history
 * so the caller learns why the sandbox is not running yet.
 */
export const runtimeProgressSignal = defineSignal<[RuntimeProgress]>('runtimeProgress');
