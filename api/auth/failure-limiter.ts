/**
 * Requests without a valid API key, counted per client address in one-minute windows. Past the limit
 * an address is answered 429 before its key is even looked at, so a client cycling through made-up
 * keys cannot turn this server into an amplifier against the tenant provider (or a key oracle).
 * Valid requests are never counted.
 */
export class AuthFailureLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly maxAddresses = 100_000,
  ) {}

  /** Whether this address has used up its failures for the current minute (0 = no limit). */
  blocked(address: string, now = Date.now()): boolean {
    if (this.perMinute === 0) return false;
    const w = this.windows.get(address);
    return !!w && now - w.start < 60_000 && w.failures >= this.perMinute;
  }

  failed(address: string, now = Date.now()): void {
    if (this.perMinute === 0) return;
    const w = this.windows.get(address);
    if (w && now - w.start < 60_000) {
      w.failures++;
      return;
    }
    this.windows.delete(address); // re-insert at the end: Map order is the eviction order
    this.windows.set(address, { start: now, failures: 1 });
    while (this.windows.size > this.maxAddresses) this.windows.delete(this.windows.keys().next().value as string);
  }
}
