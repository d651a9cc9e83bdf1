import type Dockerode from 'dockerode';
import { z } from 'zod';
import type { Config } from '../../core/config';
import type { SandboxSpec } from '../../core/sandbox';
import type { MountBind } from '../../contracts/runtime';
import { LABELS } from '../../contracts/labels';
import { buildContainerCreateOptions, ContainerIdentity, sandboxLabelFilter } from './container-spec';
import type { TenantNetwork } from './networks';

/** Docker's answers, validated before use (an engine is an untrusted edge like any other). */
const ContainerSummary = z.object({
  Id: z.string().min(1),
  State: z.string().optional(),
  Mounts: z
    .array(z.object({ Source: z.string().optional() }))
    .nullable()
    .optional(),
});
const ContainerInspect = z.object({
  Id: z.string().min(1),
  State: z.object({
    Status: z.string(),
    Running: z.boolean(),
    Paused: z.boolean().optional(),
    ExitCode: z.number().optional(),
    Error: z.string().optional(),
    StartedAt: z.string().optional(),
    FinishedAt: z.string().optional(),
  }),
  NetworkSettings: z
    .object({
      Ports: z
        .record(z.string(), z.array(z.object({ HostIp: z.string().optional(), HostPort: z.string() })).nullable())
        .nullable()
        .optional(),
    })
    .optional(),
});
export type ContainerState = z.infer<typeof ContainerInspect>['State'];
const NetworkInspect = z.object({
  Name: z.string(),
  Options: z.record(z.string(), z.string()).nullable().optional(),
  Labels: z.record(z.string(), z.string()).nullable().optional(),
  Containers: z.record(z.string(), z.unknown()).nullable().optional(),
});
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';

/** Docker status code carried by dockerode errors; we map by code, never by message text. */
export function dockerStatus(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The adapter in front of one Docker engine: the only code that speaks dockerode for sandboxes. */
export class DockerEngine {
  constructor(
    private readonly docker: Dockerode,
    private readonly config: Pick<Config, 'docker' | 'instance'>,
    private readonly seccompProfile?: string,
  ) {}

  async findSandboxContainers(sandboxId: string): Promise<Array<z.infer<typeof ContainerSummary>>> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: sandboxLabelFilter(this.config.instance, sandboxId) },
    });
    return z.array(ContainerSummary).parse(list);
  }

  /**
   * The host directory of a named volume (local driver), creating the volume when allowed. undefined
   * when it does not exist and may not be created; throws for a driver whose data is not on this host.
   */
  async volumeDirectory(name: string, create: boolean, labels: Record<string, string>): Promise<string | undefined> {
    let info: { Driver?: string; Mountpoint?: string };
    try {
      info = await this.docker.getVolume(name).inspect();
    } catch (err) {
      if (dockerStatus(err) !== 404) throw err;
      if (!create) return undefined;
      // Creating an existing volume is a no-op in Docker, so a race with another attempt is harmless.
      info = (await this.docker.createVolume({ Name: name, Labels: labels })) as { Driver?: string; Mountpoint?: string };
    }
    if (info.Driver !== 'local' || !info.Mountpoint) {
      throw new Error(`volume ${name} uses driver ${info.Driver ?? 'unknown'}; only local volumes can be bound at a subPath`);
    }
    return info.Mountpoint;
  }

  /** Commit a container to `repo:tag` with labels (the container is paused meanwhile); returns the image id. */
  async commit(containerId: string, repo: string, tag: string, labels: Record<string, string>): Promise<string> {
    const changes = `LABEL ${Object.entries(labels)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ')}`;
    const result = (await this.docker.getContainer(containerId).commit({ repo, tag, pause: true, changes })) as { Id?: string };
    if (!result.Id) throw new Error(`docker commit of ${containerId} returned no image id`);
    return result.Id;
  }

  /** Id, size and labels of an image, or undefined when there is none by that reference. */
  async imageInfo(ref: string): Promise<{ id: string; size: number; labels: Record<string, string> } | undefined> {
    try {
      const info = (await this.docker.getImage(ref).inspect()) as {
        Id: string;
        Size?: number;
        Config?: { Labels?: Record<string, string> | null };
      };
      return { id: info.Id, size: info.Size ?? 0, labels: info.Config?.Labels ?? {} };
    } catch (err) {
      if (dockerStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Remove an image reference: 'removed', 'absent', or 'in-use' (a container still uses it). */
  async removeImage(ref: string): Promise<'removed' | 'absent' | 'in-use'> {
    try {
      await this.docker.getImage(ref).remove({ force: false, noprune: false });
      return 'removed';
    } catch (err) {
      if (dockerStatus(err) === 404) return 'absent';
      if (dockerStatus(err) === 409) return 'in-use';
      throw err;
    }
  }

  /** Pull an image, calling `onProgress` for every progress event (activities heartbeat there). */
  async pullImage(uri: string, onProgress: () => void): Promise<void> {
    const stream = await this.docker.pull(uri);
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => (err ? reject(err) : resolve()),
        () => onProgress(),
      );
    });
  }

  /**
   * Make sure a tenant's network exists with the bridge name the egress guard matches. A network of
   * that name made by someone else (another bridge name, or not ours) is refused, never joined.
   */
  async ensureNetwork(net: TenantNetwork, labels: Record<string, string>): Promise<void> {
    const inspect = async () => NetworkInspect.parse(await this.docker.getNetwork(net.name).inspect());
    let found: z.infer<typeof NetworkInspect> | undefined;
    try {
      found = await inspect();
    } catch (err) {
      if (dockerStatus(err) !== 404) throw err;
    }
    if (!found) {
      try {
        await this.docker.createNetwork({
          Name: net.name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: labels,
          Options: { [BRIDGE_NAME_OPTION]: net.bridge, 'com.docker.network.bridge.enable_icc': 'true' },
        });
        return;
      } catch (err) {
        if (dockerStatus(err) !== 409) throw err; // made concurrently: check the winner below
      }
      found = await inspect();
    }
    if (found.Options?.[BRIDGE_NAME_OPTION] !== net.bridge || found.Labels?.[LABELS.instance] !== labels[LABELS.instance]) {
      throw new Error(
        `network ${net.name} exists but was not made by this install (bridge ${found.Options?.[BRIDGE_NAME_OPTION] ?? 'unnamed'})`,
      );
    }
  }

  async networkExists(name: string): Promise<boolean> {
    try {
      await this.docker.getNetwork(name).inspect();
      return true;
    } catch (err) {
      if (dockerStatus(err) === 404) return false;
      throw err;
    }
  }

  /** This install's tenant networks no container is attached to. */
  async idleNetworks(): Promise<string[]> {
    const networks = await this.docker.listNetworks({ filters: { label: [`${LABELS.instance}=${this.config.instance}`] } });
    // A created container joins its network only when it starts: one that names it keeps it, whatever its state.
    const named = new Set(
      (await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${this.config.instance}`] } })).map(
        (c) => c.HostConfig?.NetworkMode,
      ),
    );
    const idle: string[] = [];
    for (const { Id } of networks) {
      try {
        const info = NetworkInspect.parse(await this.docker.getNetwork(Id).inspect());
        if (Object.keys(info.Containers ?? {}).length === 0 && !named.has(info.Name)) idle.push(info.Name);
      } catch (err) {
        if (dockerStatus(err) !== 404) throw err;
      }
    }
    return idle;
  }

  /** Remove a network unless a container joined it meanwhile (then it stays). */
  async removeNetwork(name: string): Promise<void> {
    try {
      await this.docker.getNetwork(name).remove();
    } catch (err) {
      if (dockerStatus(err) !== 404 && dockerStatus(err) !== 403 && dockerStatus(err) !== 409) throw err;
    }
  }

  async createContainer(id: ContainerIdentity, spec: SandboxSpec, mountBinds: MountBind[] = []): Promise<string> {
    const container = await this.docker.createContainer(
      buildContainerCreateOptions(id, spec, this.config.docker, this.seccompProfile, mountBinds),
    );
    return container.id;
  }

  async startContainer(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).start();
    } catch (err) {
      if (dockerStatus(err) !== 304) throw err; // 304: already started
    }
  }

  /** Resolves true if the container stops within `ms`, false if it is still running then. */
  async exitsWithin(containerId: string, ms: number): Promise<boolean> {
    if (ms <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const waited = this.docker
      .getContainer(containerId)
      .wait({ condition: 'not-running' })
      .then(() => true);
    const elapsed = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([waited, elapsed]);
    } finally {
      clearTimeout(timer);
      waited.catch(() => undefined);
    }
  }

  async inspectState(containerId: string): Promise<ContainerState> {
    return ContainerInspect.parse(await this.docker.getContainer(containerId).inspect()).State;
  }

  /** State and published TCP ports from one inspect. */
  async stateAndPorts(containerId: string): Promise<{ state: ContainerState; ports: Record<string, number> }> {
    const inspected = ContainerInspect.parse(await this.docker.getContainer(containerId).inspect());
    const ports: Record<string, number> = {};
    for (const [key, bindings] of Object.entries(inspected.NetworkSettings?.Ports ?? {})) {
      const [port, proto] = key.split('/');
      const hostPort = Number(bindings?.[0]?.HostPort);
      if (proto === 'tcp' && port && Number.isInteger(hostPort) && hostPort > 0) ports[port] = hostPort;
    }
    return { state: inspected.State, ports };
  }

  /** Thaw a container thought paused, with no inspect first: false when it was not paused (409); a 404 throws. */
  async unpauseNow(containerId: string): Promise<boolean> {
    try {
      await this.docker.getContainer(containerId).unpause();
      return true;
    } catch (err) {
      if (dockerStatus(err) !== 409) throw err;
      return false;
    }
  }

  /** Freeze every process (cgroup freezer). Idempotent: an already paused container is fine. */
  async pause(containerId: string): Promise<void> {
    const state = await this.inspectState(containerId);
    if (state.Paused) return;
    await this.docker.getContainer(containerId).pause();
  }

  /** Thaw a paused container. Idempotent: a running, unpaused container is fine. */
  async unpause(containerId: string): Promise<void> {
    const state = await this.inspectState(containerId);
    if (state.Running && !state.Paused) return;
    await this.docker.getContainer(containerId).unpause();
  }

  /**
   * Why a container that died within `withinMs` of its start died: its exit code and last output
   * (≤ 500 characters), as a failed start reports it. Undefined for a later death or one not found.
   */
  async earlyExitMessage(containerId: string, withinMs: number): Promise<string | undefined> {
    let state: ContainerState;
    try {
      state = await this.inspectState(containerId);
    } catch (err) {
      if (dockerStatus(err) === 404) return undefined;
      throw err;
    }
    const lived = Date.parse(state.FinishedAt ?? '') - Date.parse(state.StartedAt ?? '');
    if (state.Running || !(lived >= 0 && lived <= withinMs)) return undefined;
    const logs = await this.logsTail(containerId, 20).catch(() => '');
    return (
      `entrypoint exited with code ${state.ExitCode ?? 'unknown'} ${lived} ms after it started` +
      (logs ? `; last output: ${logs.slice(-500)}` : '')
    );
  }

  async logsTail(containerId: string, lines: number): Promise<string> {
    const buf = (await this.docker.getContainer(containerId).logs({ stdout: true, stderr: true, tail: lines })) as unknown as Buffer;
    // Multiplexed stream: strip the 8-byte frame headers.
    const out: string[] = [];
    for (let i = 0; i + 8 <= buf.length;) {
      const size = buf.readUInt32BE(i + 4);
      out.push(buf.subarray(i + 8, i + 8 + size).toString('utf8'));
      i += 8 + size;
    }
    return out.join('').trim();
  }

  /** Every sandbox container of this install (any state), with its sandbox and creation time. */
  async instanceContainers(): Promise<Array<{ id: string; sandboxId: string; createdMs: number; state: string; pool?: string }>> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${this.config.instance}`] } });
    return z
      .array(
        z.object({
          Id: z.string().min(1),
          Created: z.number(),
          State: z.string().optional(),
          Labels: z.record(z.string(), z.string()).nullable().optional(),
        }),
      )
      .parse(list)
      .flatMap((c) => {
        const sandboxId = c.Labels?.[LABELS.sandboxId];
        const pool = c.Labels?.[LABELS.pool];
        return sandboxId ? [{ id: c.Id, sandboxId, createdMs: c.Created * 1000, state: c.State ?? '', ...(pool ? { pool } : {}) }] : [];
      });
  }

  /** Remove a container and its anonymous volumes; true if it existed. */
  async removeContainer(containerId: string): Promise<boolean> {
    try {
      await this.docker.getContainer(containerId).remove({ force: true, v: true });
      return true;
    } catch (err) {
      const status = dockerStatus(err);
      if (status === 404) return false;
      if (status === 409) {
        // "removal already in progress": wait for the engine to finish, then report it gone.
        await this.docker
          .getContainer(containerId)
          .wait({ condition: 'removed' })
          .catch(() => undefined);
        return false;
      }
      throw err;
    }
  }
}
