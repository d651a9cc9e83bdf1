import type { SearchAttributeType } from '@temporalio/common';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';

/**
 * What the actor tests (tests/workflows) start from: the Temporal dev server (the CLI the suite
 * installs, TEMPORAL_CLI_PATH) on 127.0.0.1, suggesting a continue-as-new after `suggestContinueAsNewAt`
 * events so that a test reaches one in a few dozen messages, and the workflows bundled quietly.
 */
export async function startWorkflowEnv(opts: {
  suggestContinueAsNewAt: number;
  searchAttributes?: SearchAttributeKey<SearchAttributeType>[];
}): Promise<TestWorkflowEnvironment> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: process.env.TEMPORAL_CLI_PATH ?? 'temporal' },
      ip: '127.0.0.1',
      ...(opts.searchAttributes ? { searchAttributes: opts.searchAttributes } : {}),
      extraArgs: ['--dynamic-config-value', `limit.historyCount.suggestContinueAsNew=${opts.suggestContinueAsNewAt}`],
    },
  });
}

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} };

/** The workflows of `path` (a module resolved by the caller), bundled with only errors logged. */
export function bundleQuietly(path: string): ReturnType<typeof bundleWorkflowCode> {
  return bundleWorkflowCode({ workflowsPath: path, logger: quietLogger });
}
