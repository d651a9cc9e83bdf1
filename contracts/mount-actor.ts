/** What the mount actor (`mount/<hostId>/<key>`) answers to. Names are recorded in histories. */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { MountView, MountWorkflowInput } from '../core/mounts';

export const MOUNT_WORKFLOW_TYPE = 'mountWorkflow';
export type MountWorkflow = (input: MountWorkflowInput) => Promise<MountView>;

/** Join the holders; resolves with the host path once mounted, fails if this mount attempt fails. */
export const acquireMountUpdate = defineUpdate<{ hostPath: string }, [{ sandboxId: string }]>('acquire');
/** Leave the holders (idempotent); the last one out makes the actor unmount and complete. */
export const releaseMountUpdate = defineUpdate<MountView, [{ sandboxId: string }]>('release');
export const describeMountQuery = defineQuery<MountView>('describe');
