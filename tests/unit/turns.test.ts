import { Turns } from '../../api/temporal/turns';

const roomy = { waitMs: 60_000, maxWaiting: 100 };

describe('turns', () => {
  it('when more calls than the limit arrive for one key, then at most the limit run at once and the rest start in arrival order', async () => {
    const turns = new Turns(2, roomy);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const gates: Array<() => void> = [];
    const calls = Array.from({ length: 6 }, (_, i) =>
      turns.run('pool/a/x', async () => {
        started.push(i);
        most = Math.max(most, ++running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
        return i;
      }),
    );
    // Let each released call finish before the next is let go.
    for (let released = 0; released < 6; released++) {
      await new Promise((r) => setImmediate(r));
      gates.shift()!();
    }
    expect(await Promise.all(calls)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(most).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('when keys differ, then they do not wait for each other; a failed call gives its turn back', async () => {
    const turns = new Turns(1, roomy);
    let release!: () => void;
    const held = turns.run('a', () => new Promise<void>((resolve) => (release = resolve)));
    await expect(turns.run('b', async () => 'b')).resolves.toBe('b');
    release();
    await held;
    await expect(turns.run('a', async () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    await expect(turns.run('a', async () => 'again')).resolves.toBe('again');
  });

  it('when as many callers already wait for a key as allowed, then the next is refused at once with 429 and never runs', async () => {
    const turns = new Turns(1, { waitMs: 60_000, maxWaiting: 2 }, (key) => `pool ${key}`);
    let release!: () => void;
    const ran: string[] = [];
    const held = turns.run('acme/x', () => new Promise<void>((resolve) => (release = resolve)));
    const waiting = ['w1', 'w2'].map((name) => turns.run('acme/x', async () => ran.push(name)));
    await expect(turns.run('acme/x', async () => ran.push('w3'))).rejects.toMatchObject({
      kind: 'BUSY',
      message: expect.stringContaining('2 requests already wait for pool acme/x'),
    });
    // Another key is not affected by this one's queue.
    await expect(turns.run('acme/y', async () => 'y')).resolves.toBe('y');
    release();
    await held;
    await Promise.all(waiting);
    expect(ran).toEqual(['w1', 'w2']);
  });

  it('when a waiter gets no turn within the wait, then it gives up with 504, never runs, and the queue moves on past it', async () => {
    const turns = new Turns(1, { waitMs: 100, maxWaiting: 10 });
    let release!: () => void;
    const ran: string[] = [];
    const held = turns.run('k', () => new Promise<void>((resolve) => (release = resolve)));
    const late = turns.run('k', async () => ran.push('late'));
    await expect(late).rejects.toMatchObject({ kind: 'TIMEOUT', message: expect.stringContaining('nothing was done') });
    // One that queued after the one that gave up still gets the held turn, and only one runs at a time.
    const next = turns.run('k', async () => ran.push('next'));
    release();
    await held;
    await next;
    expect(ran).toEqual(['next']);
    // The key is idle again: a new call runs at once.
    await expect(turns.run('k', async () => 'idle')).resolves.toBe('idle');
  });
});
