import { Turns } from '../../api/temporal/turns';

describe('turns', () => {
  it('when more calls than the limit arrive for one key, then at most the limit run at once and the rest start in arrival order', async () => {
    const turns = new Turns(2);
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
    const turns = new Turns(1);
    let release!: () => void;
    const held = turns.run('a', () => new Promise<void>((resolve) => (release = resolve)));
    await expect(turns.run('b', async () => 'b')).resolves.toBe('b');
    release();
    await held;
    await expect(turns.run('a', async () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    await expect(turns.run('a', async () => 'again')).resolves.toBe('again');
  });
});
