#!/usr/bin/env node
/**
 * `tidebox`: the operator's and developer's command line over the HTTP API (docs/operations.md).
 *
 * Talks to TIDEBOX_URL (default http://127.0.0.1:8080) with OPEN_SANDBOX_API_KEY (or TIDEBOX_API_KEY);
 * an admin key sees every tenant. Tables by default, `--json` for scripts.
 * Exit codes: 0 done; 1 the operation ran and did not succeed (a sandbox Failed, a retried snapshot
 * failed again, a wait timed out); 2 bad usage or the API refused the request (4xx); 3 the API could
 * not be reached or failed (5xx).
 */
import { OperationFailed, RefusedError, UnavailableError, UsageError } from './client';
import { resources } from './resources';
import { sandboxes } from './sandboxes';
import { snapshots } from './snapshots';

const USAGE = `usage: tidebox <command> [options]
  sandboxes ls [--state S]... [--metadata k=v]... [--tenant T] [--json]
  sandboxes get <id> [--json]
  sandboxes create (--image URI | --pool NAME | --snapshot ID) [--timeout SECONDS|none] [--cpu 500m]
                   [--memory 256Mi] [--env K=V]... [--metadata K=V]... [--no-wait] [--json] [-- cmd args...]
  sandboxes rm <id>...
  sandboxes renew <id> (--for SECONDS | --until ISO-TIME) [--json]
  sandboxes pause|resume <id> [--no-wait]
  sandboxes events <id> [--json]
  mounts ls [--tenant T] [--json]
  schedules ls [--tenant T] [--json]
  snapshots ls [--state Failed]... [--sandbox ID] [--tenant T] [--json]
  snapshots retry <id> [--no-wait] [--timeout SECONDS]
  snapshots rm <id>...
  pools ls|get <name>|rm <name> [--tenant T] [--json]
  usage [--tenant T] [--json]
environment: TIDEBOX_URL (default http://127.0.0.1:8080), OPEN_SANDBOX_API_KEY (or TIDEBOX_API_KEY)
exit codes: 0 done, 1 the operation did not succeed, 2 bad usage or refused (4xx), 3 API unreachable or failed (5xx)`;

async function main(argv: string[]): Promise<number> {
  const [noun, verb, ...rest] = argv;
  if (noun === undefined) throw new UsageError('a command is needed');
  if (noun === '--help' || noun === '-h' || noun === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (noun === 'sandboxes' || noun === 'sandbox') return sandboxes(verb, rest);
  if (noun === 'snapshots') return snapshots(verb, rest);
  if (['mounts', 'schedules', 'pools', 'usage'].includes(noun)) return resources(noun, verb, rest);
  throw new UsageError(`unknown command: ${argv.join(' ')}`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    if (err instanceof RefusedError) {
      console.error(`tidebox: ${err.message}`);
      process.exit(2);
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`tidebox: ${err.message}`);
      console.error(USAGE);
      process.exit(2);
    }
    if (err instanceof UnavailableError) {
      console.error(`tidebox: ${err.message}`);
      process.exit(3);
    }
    if (err instanceof OperationFailed) {
      console.error(`tidebox: ${err.message}`);
      process.exit(1);
    }
    console.error(`tidebox: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
