export { sandboxWorkflow } from './sandbox';
export { renewWorkflow } from './renew';
export { mountWorkflow } from './mount';
export { snapshotWorkflow } from './snapshot';
// Runs continued as new carry a packed ledger under a name older workers do not have (contracts/tenant-actor.ts).
export { tenantWorkflow, tenantWorkflow as tenantLedgerWorkflow } from './tenant';
export { poolWorkflow } from './pool';
