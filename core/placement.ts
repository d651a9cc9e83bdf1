import { z } from 'zod';
import { HostId } from './docker-config';

/**
 * Which Docker host a new sandbox goes to. Every host runs a host worker (its `docker.hostId`)
 * polling `<taskQueue>-host-<id>`; the API only names the host in the sandbox actor's input, and
 * every later step of that sandbox (pause, snapshot, delete, its mounts) runs on that host's queue.
 * A host whose worker is down keeps its work queued in Temporal until the worker is back.
 */
export const PlacementSchema = z
  .object({
    /**
     * The Docker hosts this API places new sandboxes on, by weight (smooth weighted round-robin: with
     * weights 2 and 1, two of every three creates go to the first). Weight 0 drains a host: no new
     * sandboxes, while its sandboxes, snapshots and execd keep working. Empty (the default): every
     * sandbox goes to this API's own `docker.hostId`.
     */
    hosts: z
      .array(
        z
          .object({
            id: HostId,
            weight: z.number().int().min(0).max(1000).default(1),
            /**
             * Where the API reaches this host's worker execd listener (http(s)://host:port); unset:
             * `execd.workerUrl` with {hostId} replaced, or, for this API's own host, 127.0.0.1:execd.workerPort.
             */
            execdUrl: z
              .string()
              .regex(/^https?:\/\/[^/]+$/, 'must be http(s)://host[:port]')
              .optional(),
          })
          .strict(),
      )
      .max(256)
      .default([]),
  })
  .strict()
  .prefault({});
export type PlacementConfig = z.infer<typeof PlacementSchema>;
export type PlacedHost = PlacementConfig['hosts'][number];

/** What is wrong with a placement section, or undefined. */
export function placementProblem(placement: PlacementConfig, runtime: 'docker' | 'kubernetes' | 'noop'): string | undefined {
  const { hosts } = placement;
  if (!hosts.length) return undefined;
  if (runtime === 'kubernetes') return 'placement.hosts: Docker hosts only; a Kubernetes cluster places pods itself';
  const ids = hosts.map((h) => h.id);
  const twice = ids.find((id, i) => ids.indexOf(id) !== i);
  if (twice) return `placement.hosts: host ${twice} is listed twice`;
  if (!hosts.some((h) => h.weight > 0)) return 'placement.hosts: at least one host needs a weight above 0';
  return undefined;
}

/**
 * Placement over the configured hosts. Host ids are as the workers name their queues: `noop-<id>`
 * on the noop runtime (`prefix`), so a noop install never places onto a real host's queue.
 */
export class Placement {
  private readonly hosts: PlacedHost[];
  private readonly current: number[];
  private readonly total: number;

  constructor(
    placement: PlacementConfig,
    /** This API's own host: the only one when `placement.hosts` is empty. */
    private readonly ownHostId: string,
    private readonly prefix = '',
  ) {
    this.hosts = placement.hosts.length ? placement.hosts : [{ id: ownHostId.slice(prefix.length), weight: 1 }];
    this.current = this.hosts.map(() => 0);
    this.total = this.hosts.reduce((sum, h) => sum + h.weight, 0);
  }

  /** The host the next sandbox goes to (smooth weighted round-robin: spread evenly, in proportion to weight). */
  next(): string {
    let best = 0;
    for (let i = 0; i < this.hosts.length; i++) {
      this.current[i]! += this.hosts[i]!.weight;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.total;
    return `${this.prefix}${this.hosts[best]!.id}`;
  }

  /** The configured host with this id (drained ones too), or undefined: an id from a sandbox or snapshot. */
  host(hostId: string): PlacedHost | undefined {
    if (!hostId.startsWith(this.prefix)) return undefined;
    const id = hostId.slice(this.prefix.length);
    return this.hosts.find((h) => h.id === id);
  }

  /** Whether this API may start work on the host: its own, or one it places on. */
  serves(hostId: string): boolean {
    return hostId === this.ownHostId || this.host(hostId) !== undefined;
  }
}
