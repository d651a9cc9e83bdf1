import { MOUNT_WORKFLOW_TYPE } from '../../contracts/mount-actor';
import type { MountView } from '../../core/mounts';
import { type Caller, canSee } from '../../core/tenants';
import type { TemporalGateway } from './gateway';

/** Shared bucket mounts over their actors (`mount/<hostId>/<key>`), read from memo and visibility. */
export function createMountService(temporal: TemporalGateway) {
  return {
    /** The caller's mount actors that are still running (a completed one has unmounted); admins see all, or one tenant's. */
    async list(caller: Caller, tenantFilter?: string): Promise<MountView[]> {
      const tenant = caller.kind === 'tenant' ? caller.tenant : tenantFilter;
      const views = await temporal.scan<MountView>(
        { type: MOUNT_WORKFLOW_TYPE, tenant },
        (view) => canSee(caller, view.tenant) && (tenant === undefined || view.tenant === tenant),
      );
      return views.sort((a, b) => a.key.localeCompare(b.key));
    },
  };
}

export type MountService = ReturnType<typeof createMountService>;
