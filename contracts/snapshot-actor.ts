/** What the snapshot actor (`snapshot/<snapshotId>`) answers to. Names are recorded in histories. */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { SnapshotView, SnapshotWorkflowInput } from '../core/snapshots';

export const SNAPSHOT_WORKFLOW_TYPE = 'snapshotWorkflow';
export type SnapshotWorkflow = (input: SnapshotWorkflowInput) => Promise<SnapshotView>;

export const describeSnapshotQuery = defineQuery<SnapshotView>('describe');
/** Failed → Creating: run the steps again from the one that failed. Answers at once with the view. */
export const retrySnapshotUpdate = defineUpdate<SnapshotView, []>('retry');
/** Ready | Failed → Deleting → image removed → the actor completes. Rejected while Creating or while a sandbox runs the image. */
export const deleteSnapshotUpdate = defineUpdate<SnapshotView, []>('delete');
