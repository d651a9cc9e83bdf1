import Dockerode from 'dockerode';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './stack';

const run = promisify(execFile);

/**
 * A second Docker host on this machine (scripts/docker-test-host): its own dockerd in a network
 * namespace of its own, reached here at `address` (its published ports) and `socket`.
 */
export class DockerTestHost {
  readonly dir = mkdtempSync('/tmp/tidebox-host-');
  socket = '';
  address = '';
  /** iptables wrappers that act in the host's namespace: what its worker's egress guard runs. */
  iptables = '';
  iptablesRestore = '';
  docker!: Dockerode;

  static async start(images: string[]): Promise<DockerTestHost> {
    const host = new DockerTestHost();
    try {
      await run('bash', [join(repoRoot(), 'scripts/docker-test-host'), 'start', host.dir, ...images], { timeout: 120_000 });
    } catch (err) {
      await host.stop();
      throw err;
    }
    const env = Object.fromEntries(
      readFileSync(join(host.dir, 'host.env'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    host.socket = env.SOCKET!;
    host.address = env.ADDRESS!;
    host.iptables = env.IPTABLES!;
    host.iptablesRestore = env.IPTABLES_RESTORE!;
    host.docker = new Dockerode({ socketPath: host.socket });
    return host;
  }

  /** Stop the engine (its containers with it) and remove the namespace and the dir. */
  async stop(): Promise<void> {
    await run('bash', [join(repoRoot(), 'scripts/docker-test-host'), 'stop', this.dir], { timeout: 120_000 }).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
