export { SandboxViewStore, type ViewQuery, type ViewStoreOptions, type ViewWrite } from './store';
export { keepSandboxViews, reconcileSandboxViews, type ReconcileReport, SandboxViewWriter } from './upkeep';
