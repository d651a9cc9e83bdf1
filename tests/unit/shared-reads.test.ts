import { sharedRead, sharedReads } from '../../api/shared-reads';

describe('shared reads', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  it('when callers ask within the window, then they share one read; after it, the next caller reads again', async () => {
    let reads = 0;
    const read = sharedRead(5000, async () => ++reads);
    expect(await Promise.all([read(), read(), read()])).toEqual([1, 1, 1]);
    jest.advanceTimersByTime(4999);
    expect(await read()).toBe(1);
    jest.advanceTimersByTime(1);
    expect(await read()).toBe(2);
    expect(reads).toBe(2);
  });

  it('when a read fails, then it is not kept: the next caller reads again at once', async () => {
    let reads = 0;
    const read = sharedRead(5000, async () => {
      reads++;
      if (reads === 1) throw new Error('visibility unavailable');
      return reads;
    });
    await expect(read()).rejects.toThrow('visibility unavailable');
    expect(await read()).toBe(2);
    expect(await read()).toBe(2);
  });

  it('when more keys are asked than it keeps, then expired keys go first, then the oldest; each read gets the arguments of the call that started it', async () => {
    const started: string[] = [];
    const read = sharedReads(1000, 2, async (tenant: string, who: string) => {
      started.push(`${tenant}:${who}`);
      return `${tenant} for ${who}`;
    });
    expect(await read('a', 'first')).toBe('a for first');
    expect(await read('a', 'second')).toBe('a for first'); // shared: the first call's arguments
    jest.advanceTimersByTime(1000);
    expect(await read('b', 'x')).toBe('b for x'); // a expired
    expect(await read('c', 'x')).toBe('c for x'); // a dropped as expired, b kept
    expect(await read('b', 'y')).toBe('b for x');
    expect(await read('d', 'x')).toBe('d for x'); // none expired: b, the oldest, goes
    expect(await read('c', 'y')).toBe('c for x');
    expect(await read('b', 'z')).toBe('b for z');
    expect(started).toEqual(['a:first', 'b:x', 'c:x', 'd:x', 'b:z']);
  });
});
