import { PROGRESS_REPEAT_MS, progressReporter } from '../../activities/kubernetes/progress-reporter';
import type { RuntimeProgress } from '../../core/sandbox';

/** A send whose calls the test settles one by one, in the order it chooses. */
function controlledSend() {
  const calls: Array<{ progress: RuntimeProgress; resolve: () => void; reject: (err: Error) => void }> = [];
  const send = (_id: string, progress: RuntimeProgress) =>
    new Promise<void>((resolve, reject) => calls.push({ progress, resolve, reject }));
  return { calls, send };
}
const settle = () => new Promise((r) => setImmediate(r));
const unschedulable = { reason: 'Unschedulable', message: '0/3 nodes are available' };

describe('pod progress reports', () => {
  it('when the same reason is seen on every poll, then it is sent once', async () => {
    const { calls, send } = controlledSend();
    const report = progressReporter('sb', send, () => undefined);
    report(unschedulable);
    calls[0]!.resolve();
    await settle();
    report(unschedulable);
    report(unschedulable);
    expect(calls).toHaveLength(1);
  });

  it('when a report is still in flight, then the next one waits for it, so they arrive in order', async () => {
    const { calls, send } = controlledSend();
    const report = progressReporter('sb', send, () => undefined);
    report(unschedulable);
    report({ reason: 'ContainerCreating', message: 'ContainerCreating' }); // skipped: one in flight
    expect(calls).toHaveLength(1);
    calls[0]!.resolve();
    await settle();
    report({ reason: 'ContainerCreating', message: 'ContainerCreating' });
    expect(calls.map((c) => c.progress.reason)).toEqual(['Unschedulable', 'ContainerCreating']);
  });

  it('when a report fails, then it is warned about and sent again with the next poll', async () => {
    const { calls, send } = controlledSend();
    const warnings: string[] = [];
    const report = progressReporter('sb', send, (_msg, error) => warnings.push(error));
    report(unschedulable);
    calls[0]!.reject(new Error('deadline exceeded'));
    await settle();
    report(unschedulable);
    expect(warnings).toEqual(['deadline exceeded']);
    expect(calls).toHaveLength(2);
  });

  it('when only the message changes, then it is sent again at most every PROGRESS_REPEAT_MS', async () => {
    const { calls, send } = controlledSend();
    let clock = 1_000_000;
    const report = progressReporter(
      'sb',
      send,
      () => undefined,
      () => clock,
    );
    report(unschedulable);
    calls[0]!.resolve();
    await settle();
    report({ ...unschedulable, message: '0/4 nodes are available' });
    expect(calls).toHaveLength(1);
    clock += PROGRESS_REPEAT_MS;
    report({ ...unschedulable, message: '0/4 nodes are available' });
    expect(calls.map((c) => c.progress.message)).toEqual(['0/3 nodes are available', '0/4 nodes are available']);
  });
});
