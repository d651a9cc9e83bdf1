export { sandboxWorkflow } from './sandbox';
