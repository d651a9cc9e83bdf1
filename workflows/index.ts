export { sandboxWorkflow } from './sandbox';
export { renewWorkflow } from './renew';
export { mountWorkflow } from './mount';
export { snapshotWorkflow } from './snapshot';
export { tenantWorkflow } from './tenant';
export { poolWorkflow } from './pool';
