import { judgeRenewal, renewScheduleProblem, scheduledExpiry } from '../../core/expiry';

const NOW = Date.parse('2026-06-01T12:00:00.000Z');
const at = (seconds: number) => new Date(NOW + seconds * 1000).toISOString();
const policy = { maxTimeoutSeconds: 3600 };

describe('the expiry rule (core/expiry.ts)', () => {
  it('when a renewal moves expiresAt forward within the rolling cap, then it is accepted, normalised to UTC', () => {
    expect(judgeRenewal(at(60), '2026-06-01T14:30:00+02:00', NOW, policy)).toEqual({ ok: true, expiresAt: at(1800) });
    expect(judgeRenewal(at(60), at(60), NOW, policy)).toEqual({ ok: true, expiresAt: at(60) });
    expect(judgeRenewal(at(60), at(3600), NOW, policy).ok).toBe(true);
  });

  it('when a renewal is not in the future, earlier than the current expiresAt or beyond the cap from now, then it is refused saying why', () => {
    expect(judgeRenewal(at(60), at(0), NOW, policy)).toEqual({
      ok: false,
      kind: 'INVALID_EXPIRATION',
      message: 'expiresAt must be in the future',
    });
    expect(judgeRenewal(at(600), at(300), NOW, policy)).toMatchObject({
      ok: false,
      kind: 'INVALID_EXPIRATION',
      message: `expiresAt must not be earlier than the current expiresAt ${at(600)}`,
    });
    expect(judgeRenewal(at(60), at(3601), NOW, policy)).toEqual({
      ok: false,
      kind: 'INVALID_EXPIRATION',
      message: `expiresAt must not be later than ${at(3600)} (a renewal extends at most 3600 s past the time of renewal)`,
    });
  });

  it('when the sandbox is for manual cleanup, then nothing can be renewed', () => {
    expect(judgeRenewal(null, at(60), NOW, policy)).toMatchObject({ ok: false, kind: 'MANUAL_CLEANUP' });
  });

  it('when a renew schedule runs, then it asks for now + extendBy, capped by until and the policy, or nothing when that is not later', () => {
    expect(scheduledExpiry(at(30), NOW, 120, undefined, policy)).toBe(at(120));
    expect(scheduledExpiry(at(30), NOW, 120, at(90), policy)).toBe(at(90));
    expect(scheduledExpiry(at(30), NOW, 7200, undefined, policy)).toBe(at(3600));
    expect(scheduledExpiry(at(200), NOW, 120, undefined, policy)).toBeUndefined();
  });

  it('when a renew schedule is set up, then it must extend by more than its interval, at most the cap, until a future time', () => {
    expect(renewScheduleProblem({ intervalSeconds: 60, extendBySeconds: 120 }, NOW, policy)).toBeUndefined();
    expect(renewScheduleProblem({ intervalSeconds: 60, extendBySeconds: 60 }, NOW, policy)).toMatch(/greater than intervalSeconds/);
    expect(renewScheduleProblem({ intervalSeconds: 60, extendBySeconds: 3601 }, NOW, policy)).toMatch(/at most 3600/);
    expect(renewScheduleProblem({ intervalSeconds: 60, extendBySeconds: 120, until: at(0) }, NOW, policy)).toBe(
      'until must be in the future',
    );
  });
});
