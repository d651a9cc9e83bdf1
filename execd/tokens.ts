import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Per-sandbox execd access tokens: HMAC-SHA256 of the sandbox id under a server key, so a token
 * opens exactly one sandbox and any replica with the key can check it without shared state. The key
 * comes from `execd.tokenSecret`, else from `<dataDir>/execd-token.key` (made on first start, 0600).
 */
export class ExecdTokens {
  private constructor(private readonly key: Buffer) {}

  static open(opts: { secret: string | undefined; dataDir: string }): ExecdTokens {
    if (opts.secret) return new ExecdTokens(Buffer.from(opts.secret, 'utf8'));
    const file = join(opts.dataDir, 'execd-token.key');
    try {
      return new ExecdTokens(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    mkdirSync(opts.dataDir, { recursive: true });
    const key = randomBytes(32);
    try {
      writeFileSync(file, key.toString('base64url'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another process made it first: use theirs.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return ExecdTokens.open(opts);
      throw err;
    }
    chmodSync(file, 0o600);
    return new ExecdTokens(key);
  }

  mint(sandboxId: string): string {
    return createHmac('sha256', this.key).update(`tidebox-execd:v1:${sandboxId}`).digest('base64url');
  }

  /** Whether a presented token is this sandbox's. */
  verify(sandboxId: string, presented: string): boolean {
    const expected = Buffer.from(this.mint(sandboxId));
    const given = Buffer.from(presented);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
