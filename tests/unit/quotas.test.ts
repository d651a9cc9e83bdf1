import {
  admissionProblem,
  poolLimits,
  poolOfReservationKey,
  poolReservation,
  poolReservationKey,
  snapshotReservationKey,
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
