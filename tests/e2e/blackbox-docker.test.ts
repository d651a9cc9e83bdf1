import { Stack } from '../helpers/stack';
import { describeBlackBoxLifecycle } from './blackbox/lifecycle-suite';

/** The runtime-independent lifecycle tests on the Docker runtime (kubernetes.test.ts runs them on pods). */
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start();
});
afterAll(async () => {
  await stack?.destroy();
});

describeBlackBoxLifecycle('docker', () => ({
  stack,
  headers: {},
  workloads: async (id) => (await stack.containers(id)).length,
  endpoint: /^127\.0\.0\.1:\d+$/,
}));
