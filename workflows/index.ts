export { sandboxWorkflow } from './sandbox';
export { renewWorkflow } from './renew';
