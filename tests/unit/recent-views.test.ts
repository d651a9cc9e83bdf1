import { RecentViews } from '../../api/temporal/recent-views';
import type { MemoView, SandboxState } from '../../core/sandbox';

/** The API's reuse of Running views for the data plane: what it keeps, for how long, and what drops it. */

const view = (id: string, state: SandboxState = 'Running'): MemoView =>
  ({ id, tenant: 'acme', status: { state }, metadata: {}, createdAt: '2026-12-05T00:00:00Z' }) as unknown as MemoView;

describe('RecentViews', () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => (now = 1_000_000));

  it('when a Running view was read, then it is reused until ttlMs has passed, and not after', () => {
    const recent = new RecentViews(1000, 10, clock);
    recent.put(view('a'), recent.mark());
    now += 999;
    expect(recent.get('a')?.id).toBe('a');
    now += 1;
    expect(recent.get('a')).toBeUndefined();
    expect(recent.size).toBe(0);
  });

  it('when a view is not Running, then it is not kept, and it removes the Running one kept before', () => {
    const recent = new RecentViews(1000, 10, clock);
    recent.put(view('a'), recent.mark());
    recent.put(view('a', 'Paused'), recent.mark());
    expect(recent.get('a')).toBeUndefined();
    for (const state of ['Pending', 'Pausing', 'Resuming', 'Stopping', 'Failed', 'Terminated'] as const) {
      recent.put(view('b', state), recent.mark());
      expect(recent.get('b')).toBeUndefined();
    }
  });

  it('when this process changes a sandbox while a read of it is in flight, then that read does not put the old view back', () => {
    const recent = new RecentViews(1000, 10, clock);
    recent.put(view('a'), recent.mark());
    const mark = recent.mark(); // a describe begins, and sees Running…
    recent.drop('a'); // …while a pause is sent (and again once it is done)
    recent.put(view('a'), mark);
    expect(recent.get('a')).toBeUndefined();
    // A read that began after the change is kept.
    recent.put(view('a'), recent.mark());
    expect(recent.get('a')?.id).toBe('a');
    // A change to another sandbox meanwhile does not stop a read from being kept.
    const markB = recent.mark();
    recent.drop('a');
    recent.put(view('b'), markB);
    expect(recent.get('b')?.id).toBe('b');
  });

  it('when more sandboxes are read than it holds, then the least recently read go first', () => {
    const recent = new RecentViews(60_000, 3, clock);
    for (const id of ['a', 'b', 'c']) recent.put(view(id), recent.mark());
    recent.put(view('a'), recent.mark()); // read again: now the newest
    recent.put(view('d'), recent.mark());
    expect(recent.size).toBe(3);
    expect(recent.get('b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((id) => recent.get(id)?.id)).toEqual(['a', 'c', 'd']);
  });

  it('when ttlMs is 0, then nothing is kept', () => {
    const recent = new RecentViews(0, 10, clock);
    recent.put(view('a'), recent.mark());
    expect(recent.get('a')).toBeUndefined();
    expect(recent.size).toBe(0);
  });
});
