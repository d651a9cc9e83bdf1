import type { Client } from '@temporalio/client';
import type { Config } from '../../core/config';
import type { SandboxViewStore } from '../../platform/sandbox-views';
import { TemporalGateway } from './gateway';
import { createMountService, type MountService } from './mounts';
import { createPoolService, type PoolService } from './pools';
import { createQuotaService, type QuotaService } from './quotas';
import { createRenewScheduleService, type RenewScheduleService } from './renew-schedules';
import { createSandboxService, type SandboxService } from './sandboxes';
import { createSnapshotService, type SnapshotService } from './snapshots';
import { createWorkflowService, type WorkflowService } from './workflows';

/** What the routes use, one service per resource; only these modules touch the Temporal client. */
export interface ApiServices {
  sandboxes: SandboxService;
  snapshots: SnapshotService;
  mounts: MountService;
  renewSchedules: RenewScheduleService;
  workflows: WorkflowService;
  quotas: QuotaService;
  pools: PoolService;
}

/** `views`: the read projection LIST uses (views.postgresUrl), and where its failures are reported. */
export function createApiServices(
  client: Client,
  config: Config,
  views?: { store: SandboxViewStore; warn: (msg: string, fields: Record<string, unknown>) => void },
): ApiServices {
  const temporal = new TemporalGateway(client, config.server.temporalCallTimeoutSeconds * 1000);
  const quotas = createQuotaService(temporal, config);
  const sandboxes = createSandboxService(temporal, config, quotas, views);
  return {
    sandboxes,
    snapshots: createSnapshotService(temporal, config, sandboxes, quotas),
    mounts: createMountService(temporal),
    renewSchedules: createRenewScheduleService(temporal, config, sandboxes),
    workflows: createWorkflowService(temporal),
    quotas,
    pools: createPoolService(temporal, config, quotas),
  };
}

export type { MountService, PoolService, QuotaService, RenewScheduleService, SandboxService, SnapshotService, WorkflowService };
