import { createHash } from 'node:crypto';
import { FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ConfigError } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { Caller, parseTenantsFile, Tenant } from '../../core/tenants';
import { Authenticator, KeyRing, presentedKey } from './api-key';

export interface AuthLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

type Read = { kind: 'missing' } | { kind: 'text'; text: string; hash: string };

/**
 * Tenants from a TOML file (`[[tenants]]` with name, namespace, apiKeys), reloaded on change: a
 * directory watch answers at once, a poll catches what watches miss (network filesystems, editors
 * that swap files, containers with bind-mounted config). A file that does not parse or validate
 * keeps the last good tenants (and says so in the log); a deleted file invalidates every tenant key.
 */
export class FileTenantProvider implements Authenticator {
  private ring = new KeyRing<Caller>([]);
  private lastHash: string | undefined = undefined;
  private missing = false;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private reloading: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly adminRing: KeyRing<Caller>,
    private readonly adminKeys: string[],
    private readonly log: AuthLog,
  ) {}

  /** Load the file (any problem is a start-up error naming it), then watch it. */
  static async open(opts: { path: string; adminKeys: string[]; pollSeconds: number; log: AuthLog }): Promise<FileTenantProvider> {
    const admin = new KeyRing<Caller>(opts.adminKeys.map((k) => [k, { kind: 'admin' }]));
    const provider = new FileTenantProvider(opts.path, admin, opts.adminKeys, opts.log);
    const first = await provider.read();
    if (first.kind === 'missing') throw new ConfigError(`tenants file ${opts.path} does not exist`);
    const parsed = provider.parse(first.text);
    if ('problems' in parsed) throw new ConfigError(`invalid tenants file ${opts.path}: ${parsed.problems.join('; ')}`);
    provider.install(parsed.tenants, first.hash);
    provider.startWatching(opts.pollSeconds * 1000);
    return provider;
  }

  async authenticate(presented: string | string[] | undefined): Promise<Caller> {
    const key = presentedKey(presented);
    // Both rings are searched in full whatever the outcome, so timing does not tell admin from tenant keys.
    const admin = this.adminRing.find(key);
    const tenant = this.ring.find(key);
    const caller = admin ?? tenant;
    if (!caller) throw new TideboxError('INVALID_API_KEY', 'invalid API key');
    return caller;
  }

  async close(): Promise<void> {
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    await this.reloading;
  }

  /** Re-read the file now (also what the watch and the poll call); serialised. */
  reload(): Promise<void> {
    this.reloading = this.reloading
      .then(() => this.reloadOnce())
      .catch((err: Error) => this.log.error({ err, file: this.path }, 'tenants file reload failed'));
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    const read = await this.read();
    if (read.kind === 'missing') {
      if (!this.missing) {
        this.missing = true;
        this.lastHash = undefined;
        this.ring = new KeyRing([]);
        this.log.warn({ file: this.path }, 'tenants file was deleted: every tenant API key is now invalid (admin keys still work)');
      }
      return;
    }
    if (read.hash === this.lastHash) return;
    this.lastHash = read.hash; // a broken version is reported once, not on every poll
    this.missing = false;
    const parsed = this.parse(read.text);
    if ('problems' in parsed) {
      this.log.error({ file: this.path, problems: parsed.problems }, 'tenants file is invalid: keeping the last good tenants');
      return;
    }
    this.install(parsed.tenants, read.hash);
  }

  private install(tenants: Tenant[], hash: string): void {
    this.ring = new KeyRing(
      tenants.flatMap((t) =>
        t.apiKeys.map((k): [string, Caller] => [
          k,
          { kind: 'tenant', tenant: t.name, namespace: t.namespace, ...(t.quotas ? { quotas: t.quotas } : {}) },
        ]),
      ),
    );
    this.lastHash = hash;
    this.log.info({ file: this.path, tenants: tenants.length, keys: this.ring.size }, 'tenants loaded');
  }

  private parse(text: string): { tenants: Tenant[] } | { problems: string[] } {
    let value: unknown;
    try {
      value = parseToml(text);
    } catch (err) {
      return { problems: [`not valid TOML: ${(err as Error).message.split('\n')[0]}`] };
    }
    return parseTenantsFile(value, this.adminKeys);
  }

  private async read(): Promise<Read> {
    try {
      const text = await readFile(this.path, 'utf8');
      return { kind: 'text', text, hash: createHash('sha256').update(text).digest('hex') };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
      throw err;
    }
  }

  private startWatching(pollMs: number): void {
    try {
      // Watch the directory, not the file: editors and config tools replace the file (new inode).
      const name = basename(this.path);
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, changed) => {
        if (!changed || changed.toString() === name) void this.reload();
      });
      this.watcher.on('error', (err) => {
        this.log.warn({ err, file: this.path }, 'tenants file watch failed: polling only');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn({ err, file: this.path }, 'cannot watch the tenants file: polling only');
    }
    this.poll = setInterval(() => void this.reload(), pollMs);
    this.poll.unref();
  }
}
