import {
  admissionProblem,
  poolLimits,
  poolOfReservationKey,
  poolReservation,
  poolReservationKey,
  type HeldReservation,
  LONG_AGO,
  packLedger,
  QuotaLedger,
  type Reservation,
  sandboxesHeld,
  snapshotReservationKey,
  unpackLedger,
  type Usage,
  usageLimits,
} from '../../core/quotas';

const usage = { sandboxes: 2, cpuMillis: 500, memoryBytes: 128 * 2 ** 20, snapshots: 0, pools: 1 };

describe('a pool reservation', () => {
  it('when a pool may hold poolMax members, then it holds poolMax sandboxes of the template size', () => {
    expect(poolReservation({ cpuMillis: 250, memoryBytes: 64 * 2 ** 20 }, 4)).toEqual({
      kind: 'pool',
      sandboxes: 4,
      cpuMillis: 1000,
      memoryBytes: 256 * 2 ** 20,
    });
  });

  it('when the pools and sandboxes already hold the places, then a pool is judged by all poolMax of its members', () => {
    const r = poolReservation({ cpuMillis: 250, memoryBytes: 0 }, 2);
    expect(admissionProblem(usage, r, { maxSandboxes: 4 })).toBeUndefined();
    expect(admissionProblem(usage, r, { maxSandboxes: 3 })).toBe(
      'quota exceeded: maxSandboxes is 3; live sandboxes and pools hold 2 and this pool may hold 2 (poolMax)',
    );
    expect(admissionProblem(usage, r, { maxCpuMillis: 900 })).toBe(
      'quota exceeded: maxCpu is 900m; live sandboxes and pools hold 500m and this pool asks for 500m',
    );
  });

  it('when the tenant has maxPools pools, then one more is refused, while a sandbox is not judged by maxPools', () => {
    const r = poolReservation({ cpuMillis: 1, memoryBytes: 1 }, 1);
    expect(admissionProblem(usage, r, { maxPools: 1 })).toBe('quota exceeded: maxPools is 1 and 1 exist');
    expect(admissionProblem(usage, r, { maxPools: 2 })).toBeUndefined();
    expect(admissionProblem(usage, { cpuMillis: 1, memoryBytes: 1 }, { maxPools: 1 })).toBeUndefined();
  });

  it('when a sandbox meets a limit pools fill, then the refusal says pools hold places too', () => {
    expect(admissionProblem(usage, { cpuMillis: 1, memoryBytes: 1 }, { maxSandboxes: 2 })).toBe(
      'quota exceeded: maxSandboxes is 2 and 2 are live or held by pools',
    );
    expect(admissionProblem({ ...usage, pools: 0 }, { cpuMillis: 1, memoryBytes: 1 }, { maxSandboxes: 2 })).toBe(
      'quota exceeded: maxSandboxes is 2 and 2 are live',
    );
  });

  it('when limits are drawn from a quota, then only a pool is judged by maxPools (a tenant without limits still creates by Signal)', () => {
    expect(usageLimits({ maxPools: 3 })).toEqual({});
    expect(poolLimits({ maxPools: 3, maxSandboxes: 5 })).toEqual({ maxPools: 3, maxSandboxes: 5 });
  });

  it('when a key names a pool, then its actor is read back; other keys are not pools', () => {
    const key = poolReservationKey('pool/acme/warm', '5f0c1b2e-nonce');
    expect(key).toBe('pool/acme/warm@5f0c1b2e-nonce');
    expect(poolOfReservationKey(key)).toEqual({ workflowId: 'pool/acme/warm' });
    expect(poolOfReservationKey(snapshotReservationKey('s1'))).toBeUndefined();
    expect(poolOfReservationKey('0b3a6f1e-sandbox')).toBeUndefined();
  });
});

describe("the tenant actor's ledger", () => {
  /** The usage summed afresh from every held reservation: what the ledger's running sum must equal. */
  const summed = (ledger: QuotaLedger): Usage => {
    const u = { sandboxes: 0, cpuMillis: 0, memoryBytes: 0, snapshots: 0, pools: 0 };
    for (const [, r] of ledger.entries()) {
      if (r.kind === 'snapshot') u.snapshots++;
      else {
        if (r.kind === 'pool') u.pools++;
        u.sandboxes += sandboxesHeld(r);
        u.cpuMillis += r.cpuMillis;
        u.memoryBytes += r.memoryBytes;
      }
    }
    return u;
  };

  it('keeps its usage equal to the sum of what it holds through sets, replacements and deletes', () => {
    let seed = 7;
    const next = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const shapes: Reservation[] = [
      { cpuMillis: 500, memoryBytes: 2 ** 29 },
      { cpuMillis: 2000, memoryBytes: 2 ** 32 },
      { kind: 'snapshot', cpuMillis: 0, memoryBytes: 0 },
      poolReservation({ cpuMillis: 250, memoryBytes: 2 ** 28 }, 4),
    ];
    const ledger = new QuotaLedger();
    for (let i = 0; i < 5000; i++) {
      const key = `sb-${next(300)}`;
      if (next(3) === 0) ledger.delete(key);
      else ledger.set(key, { ...shapes[next(shapes.length)]!, at: '2026-12-05T00:00:00.000Z' });
      if (i % 500 === 0) expect(ledger.usage()).toEqual(summed(ledger));
    }
    expect(ledger.size).toBeGreaterThan(50);
    expect(ledger.usage()).toEqual(summed(ledger));
    for (const [key] of [...ledger.entries()]) expect(ledger.delete(key)).toBe(true);
    expect(ledger.usage()).toEqual({ sandboxes: 0, cpuMillis: 0, memoryBytes: 0, snapshots: 0, pools: 0 });
    expect(ledger.delete('sb-1')).toBe(false);
  });

  it('starts from carried reservations with their sum', () => {
    const ledger = new QuotaLedger(
      Object.entries({
        a: { cpuMillis: 1000, memoryBytes: 2 ** 30, at: '2026-12-05T00:00:00.000Z' },
        'snapshot:s': { kind: 'snapshot' as const, cpuMillis: 0, memoryBytes: 0, at: '2026-12-05T00:00:00.000Z' },
      }),
    );
    expect(ledger.usage()).toEqual({ sandboxes: 1, cpuMillis: 1000, memoryBytes: 2 ** 30, snapshots: 1, pools: 0 });
  });
});

describe("the tenant actor's carried ledger", () => {
  const now = Date.parse('2026-12-05T12:00:00.000Z');
  const young = '2026-12-05T11:59:30.000Z';
  const old = '2026-12-05T11:00:00.000Z';

  it('carries every key with what it holds, packing sandbox ids and keeping the others as they are', () => {
    const entries: Array<[string, HeldReservation]> = [];
    let seed = 11;
    const next = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[next(16)]).join('');
    for (let i = 0; i < 1000; i++)
      entries.push([
        `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`,
        { cpuMillis: 500 * (1 + next(3)), memoryBytes: 2 ** 28, at: next(4) ? old : young },
      ]);
    entries.push(['snapshot:snap-1', { kind: 'snapshot', cpuMillis: 0, memoryBytes: 0, at: young }]);
    entries.push(['pool/acme/web@n1', { ...poolReservation({ cpuMillis: 250, memoryBytes: 2 ** 28 }, 4), at: old }]);
    entries.push(['ABCDEF01-0000-0000-0000-000000000000', { cpuMillis: 500, memoryBytes: 2 ** 28, at: old }]); // not canonical: kept as is
    const carried = packLedger(entries, now, 120_000);
    const back = new Map(unpackLedger(JSON.parse(JSON.stringify(carried)) as typeof carried));
    expect(back.size).toBe(entries.length);
    for (const [key, r] of entries) expect(back.get(key)).toEqual({ ...r, at: r.at === young ? young : LONG_AGO });
    expect(new QuotaLedger(back).usage()).toEqual(new QuotaLedger(entries).usage());
    // ≈ 22 bytes a sandbox, where a JSON object each took ≈ 113.
    expect(JSON.stringify(carried).length).toBeLessThan(30 * entries.length + JSON.stringify(carried.young).length);
    expect(JSON.stringify(Object.fromEntries(entries)).length).toBeGreaterThan(100 * entries.length);
  });

  it('carries an empty ledger', () => {
    expect(unpackLedger(packLedger([], now, 120_000))).toEqual([]);
  });

  it('refuses a ledger that is not base64', () => {
    expect(() => unpackLedger({ groups: [{ holds: { cpuMillis: 1, memoryBytes: 1 }, uuids: '!!!!', keys: [] }], young: {} })).toThrow(
      'bad base64',
    );
  });
});
