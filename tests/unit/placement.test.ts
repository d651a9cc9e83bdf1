import { parseConfig, placementOf } from '../../core/config';
import { Placement } from '../../core/placement';
import { workerOrigin } from '../../api/execd/routes';

const countPicks = (placement: Placement, n: number): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const id = placement.next();
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
};

describe('placement over Docker hosts', () => {
  test('no hosts configured: every sandbox goes to the API’s own host (noop: its noop- queue)', () => {
    expect(countPicks(placementOf(parseConfig({ docker: { hostId: 'h1' } })), 5)).toEqual({ h1: 5 });
    expect(countPicks(placementOf(parseConfig({ docker: { hostId: 'h1' }, runtime: { type: 'noop' } })), 3)).toEqual({ 'noop-h1': 3 });
  });

  const execd = { tokenSecret: 'x'.repeat(32) };

  test('weights split creates in proportion, interleaved rather than in runs', () => {
    const placement = placementOf(
      parseConfig({
        execd,
        placement: {
          hosts: [
            { id: 'a', weight: 2 },
            { id: 'b', weight: 1 },
            { id: 'c', weight: 0 },
          ],
        },
      }),
    );
    const picks = Array.from({ length: 9 }, () => placement.next());
    expect(picks.filter((p) => p === 'a')).toHaveLength(6);
    expect(picks.filter((p) => p === 'b')).toHaveLength(3);
    // A drained host (weight 0) gets nothing new...
    expect(picks).not.toContain('c');
    // ...and never two b's in a row at 2:1.
    expect(picks.join(',')).not.toMatch(/b,b/);
    // Yet the API still serves it: its sandboxes and snapshots stay reachable.
    expect(placement.serves('c')).toBe(true);
    expect(placement.serves('d')).toBe(false);
  });

  test('equal weights alternate', () => {
    const placement = placementOf(parseConfig({ execd, placement: { hosts: [{ id: 'a' }, { id: 'b' }] } }));
    expect(Array.from({ length: 4 }, () => placement.next())).toEqual(['a', 'b', 'a', 'b']);
  });

  test('bad host lists are refused at start, naming the key', () => {
    expect(() => parseConfig({ placement: { hosts: [{ id: 'a' }, { id: 'a' }] } })).toThrow('host a is listed twice');
    expect(() => parseConfig({ placement: { hosts: [{ id: 'a', weight: 0 }] } })).toThrow('at least one host needs a weight above 0');
    expect(() => parseConfig({ placement: { hosts: [{ id: 'A_b' }] } })).toThrow('placement.hosts.0.id');
    expect(() => parseConfig({ placement: { hosts: [{ id: 'a', execdUrl: 'http://x/path' }] } })).toThrow('placement.hosts.0.execdUrl');
    expect(() => parseConfig({ runtime: { type: 'kubernetes' }, placement: { hosts: [{ id: 'a' }] } })).toThrow('Docker hosts only');
    // Other hosts' workers check this API's execd tokens: without a shared secret every forward would be refused.
    expect(() => parseConfig({ docker: { hostId: 'a' }, placement: { hosts: [{ id: 'a' }, { id: 'b' }] } })).toThrow('execd.tokenSecret');
    expect(() => parseConfig({ docker: { hostId: 'a' }, placement: { hosts: [{ id: 'a' }] } })).not.toThrow();
  });

  test('the execd forward goes to the host’s own worker, and refuses a host it has no address for', () => {
    const config = parseConfig({
      docker: { hostId: 'a' },
      execd: { workerPort: 4000, tokenSecret: 'x'.repeat(32) },
      placement: { hosts: [{ id: 'a' }, { id: 'b', execdUrl: 'http://10.0.0.2:5000' }, { id: 'c' }] },
    });
    expect(workerOrigin(config, 'a')?.href).toBe('http://127.0.0.1:4000/');
    expect(workerOrigin(config, 'b')?.href).toBe('http://10.0.0.2:5000/');
    expect(workerOrigin(config, 'c')).toBeUndefined();
    expect(workerOrigin(config, 'elsewhere')).toBeUndefined();
    const templated = parseConfig({ docker: { hostId: 'a' }, execd: { workerUrl: 'http://worker-{hostId}:44772' } });
    expect(workerOrigin(templated, 'z')?.href).toBe('http://worker-z:44772/');
  });
});
