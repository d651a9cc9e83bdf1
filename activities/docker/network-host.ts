import type { HostLog } from '../../contracts/runtime';
import { LABELS } from '../../contracts/labels';
import type { Config } from '../../core/config';
import type { DockerEngine } from './docker-engine';
import { installEgressGuard } from './egress-guard';
import { tenantNetwork } from './networks';

/**
 * A Docker host's network side, set up when the worker starts: with docker.network = "tenant", the
 * egress guard is installed (the worker does not start without it unless network.guard = "off") and
 * kept in place, tenant networks are made on demand, and networks left idle for two checks in a row
 * are removed. Returns where a tenant's container joins.
 */
export async function prepareNetworks(config: Config, engine: DockerEngine, log: HostLog): Promise<(tenant: string) => Promise<string>> {
  const mode = config.docker.network;
  if (mode !== 'tenant') {
    log.warn('sandboxes of every tenant share one Docker network (docker.network is not "tenant"); the egress guard is not installed', {
      network: mode,
    });
    return async () => mode;
  }
  const guarded = config.network.guard !== 'off';
  if (guarded) {
    try {
      await installEgressGuard(config.network);
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\nThe worker needs root or CAP_NET_ADMIN for the egress guard; for single-tenant development only, set network.guard = "off".`,
        { cause: err },
      );
    }
  } else {
    log.warn('network.guard is "off": sandboxes can reach this host, private networks and link-local (metadata) addresses');
  }

  let idleBefore = new Set<string>();
  // A network handed to a create is not judged idle for two checks: the create is between ensuring
  // it and making its container (after that, the container names it).
  const handedOut = new Map<string, number>();
  const HANDOUT_GRACE_MS = 2 * config.network.reconcileSeconds * 1000;
  const reconcile = async () => {
    if (guarded) {
      try {
        const { installedJumps } = await installEgressGuard(config.network);
        if (installedJumps.length) log.warn('the egress guard was missing its jumps; put them back', { chains: installedJumps.join(',') });
      } catch (err) {
        log.warn('checking the egress guard failed', { error: (err as Error).message });
      }
    }
    try {
      const idle = (await engine.idleNetworks()).filter((name) => Date.now() - (handedOut.get(name) ?? 0) > HANDOUT_GRACE_MS);
      for (const name of idle) if (idleBefore.has(name)) await engine.removeNetwork(name);
      idleBefore = new Set(idle);
      for (const [name, at] of handedOut) if (Date.now() - at > HANDOUT_GRACE_MS) handedOut.delete(name);
    } catch (err) {
      log.warn('removing idle tenant networks failed', { error: (err as Error).message });
    }
  };
  let running = false;
  setInterval(() => {
    if (running) return;
    running = true;
    void reconcile().finally(() => (running = false));
  }, config.network.reconcileSeconds * 1000).unref();

  return async (tenant) => {
    const net = tenantNetwork(config.instance, tenant);
    handedOut.set(net.name, Date.now());
    await engine.ensureNetwork(net, { [LABELS.managed]: 'true', [LABELS.instance]: config.instance, [LABELS.tenant]: tenant });
    return net.name;
  };
}
