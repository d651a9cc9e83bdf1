import type { PayloadCodec } from '@temporalio/common';
import type { Config } from '../../core/config';
import { SandboxViewStore } from './store';

export { SandboxViewStore, type ViewQuery, type ViewStoreOptions, type ViewWrite } from './store';
export { keepSandboxViews, reconcileSandboxViews, type ReconcileReport, SandboxViewWriter } from './upkeep';

/**
 * The read projection's store as `[views]` configures it for this namespace, sealed with the process's
 * payload codec; undefined when no `views.postgresUrl` is set (LIST reads Temporal's visibility).
 */
export function sandboxViewStoreOf(
  config: Pick<Config, 'views' | 'temporal'>,
  codec: PayloadCodec | undefined,
  warn: (msg: string, fields: Record<string, unknown>) => void,
): SandboxViewStore | undefined {
  const { postgresUrl, poolSize } = config.views;
  if (!postgresUrl) return undefined;
  return new SandboxViewStore({
    url: postgresUrl,
    namespace: config.temporal.namespace,
    poolSize,
    codec,
    onError: (err) => warn('sandbox views: database connection lost', { error: err.message }),
  });
}
