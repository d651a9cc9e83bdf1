import { createHash } from 'node:crypto';
import { TENANT_BRIDGE_PREFIX } from '../../core/network';

/** A tenant's bridge network on this engine: its Docker name and its Linux bridge (interface) name. */
export interface TenantNetwork {
  name: string;
  bridge: string;
}

/**
 * The network a tenant's sandboxes share on one install: `tidebox-<instance>-<tenant>`, bridge
 * `tbx<12 hex of instance/tenant>` (interface names are at most 15 characters; the guard matches the prefix).
 */
export function tenantNetwork(instance: string, tenant: string): TenantNetwork {
  const hash = createHash('sha256').update(`${instance}/${tenant}`).digest('hex').slice(0, 12);
  return { name: `tidebox-${instance}-${tenant}`, bridge: `${TENANT_BRIDGE_PREFIX}${hash}` };
}
