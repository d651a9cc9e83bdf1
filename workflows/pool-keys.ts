import { condition } from '@temporalio/workflow';
import type { ClaimAnswer } from '../contracts/pool-actor';
import type { KeyedClaim } from '../core/pools';
import type { SandboxSpec } from '../core/sandbox';

/** How many Idempotency-Keys of claims a pool remembers, and for how long. */
const KEYED = { max: 1000, ttlMs: 24 * 3600_000 };

/**
 * A pool's memory of claims made with an Idempotency-Key: a repeated key gets the first claim's
 * answer (waiting for it while that claim thaws its member), so a client whose answer was lost gets
 * its own sandbox when it asks again. Carried across continue-as-new (the member alone: the thaw's
 * details are this run's); a member given back or removed before its sandbox took it is forgotten,
 * so a key can never be handed a member that is ready for, or claimed by, someone else.
 */
export class KeyedClaims {
  private readonly records: Record<string, KeyedClaim>;
  private readonly answers = new Map<string, ClaimAnswer>();

  constructor(carried: Record<string, KeyedClaim> | undefined) {
    this.records = { ...(carried ?? {}) };
  }

  async claim(key: string, fresh: () => Promise<ClaimAnswer>, spec: () => SandboxSpec): Promise<ClaimAnswer> {
    const earlier = this.records[key];
    if (earlier) {
      await condition(() => earlier.memberId !== undefined || this.records[key] !== earlier);
      // The first claim failed (its record dropped): this one claims afresh.
      if (this.records[key] !== earlier) return this.claim(key, fresh, spec);
      return this.answers.get(key) ?? { memberId: earlier.memberId!, spec: spec() };
    }
    const record: KeyedClaim = { at: Date.now() };
    this.records[key] = record;
    // The oldest go first: those past their day, and as many more as the bound asks.
    const byAge = Object.entries(this.records).sort((a, b) => a[1].at - b[1].at);
    let excess = byAge.length - KEYED.max;
    for (const [k, r] of byAge) if (excess-- > 0 || Date.now() - r.at > KEYED.ttlMs) this.drop(k);
    let answer: ClaimAnswer;
    try {
      answer = await fresh();
    } catch (err) {
      this.drop(key);
      throw err;
    }
    record.memberId = answer.memberId;
    this.answers.set(key, answer);
    return answer;
  }

  /** The member is no claim's any more (given back, or removed unadopted). */
  forget(memberId: string): void {
    for (const [k, r] of Object.entries(this.records)) if (r.memberId === memberId) this.drop(k);
  }

  carried(): Record<string, KeyedClaim> {
    return this.records;
  }

  private drop(key: string): void {
    delete this.records[key];
    this.answers.delete(key);
  }
}
