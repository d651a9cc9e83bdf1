import { execFile } from 'node:child_process';
import { GUARD_JUMPS, guardRestoreScript, type NetworkConfig } from '../../core/network';

/** What the guard found and did: nothing to do, or the pieces it put (back) in place. */
export interface GuardReport {
  installedJumps: string[];
}

function run(binary: string, args: string[], input?: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(binary, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}`.trim() });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * Install (or put back) the host's egress guard: the two chains' contents in one iptables-restore
 * transaction, then the jumps into them from DOCKER-USER and INPUT, each added only when missing
 * (iptables -C), first in its chain. Idempotent: the worker runs it at start and every few seconds,
 * so a flushed chain (a dockerd restart, an operator's mistake) comes back. Throws when iptables
 * refuses, with its output: the worker must not run sandboxes without the guard.
 */
export async function installEgressGuard(network: NetworkConfig): Promise<GuardReport> {
  const restored = await run(network.iptablesRestoreBinary, ['--noflush'], guardRestoreScript(network));
  if (restored.code !== 0)
    throw new Error(`installing the egress guard failed (${network.iptablesRestoreBinary} --noflush): ${restored.output}`);
  const installedJumps: string[] = [];
  for (const { chain, rule } of GUARD_JUMPS) {
    if ((await run(network.iptablesBinary, ['-C', chain, ...rule])).code === 0) continue;
    const inserted = await run(network.iptablesBinary, ['-I', chain, '1', ...rule]);
    if (inserted.code !== 0) throw new Error(`installing the egress guard failed (${chain}): ${inserted.output}`);
    installedJumps.push(chain);
  }
  return { installedJumps };
}
