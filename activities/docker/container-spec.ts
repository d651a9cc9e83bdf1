import type Dockerode from 'dockerode';
import type { Config } from '../../core/config';
import { LABELS } from '../../contracts/labels';
import type { MountBind } from '../../contracts/runtime';
import { declaredPorts } from '../../core/network';
import type { SandboxSpec } from '../../core/sandbox';

export interface ContainerIdentity {
  instance: string;
  sandboxId: string;
  tenant: string;
  namespace: string;
  /** The Docker network the container joins: its tenant's, or the configured shared one. */
  network: string;
  /** A warm pool member: its pool actor's workflow id. */
  pool?: string;
}

export const containerName = (id: ContainerIdentity): string => `tidebox-${id.instance}-${id.sandboxId}`;

/** Docker label filter that finds every container of one sandbox (of one install). */
export function sandboxLabelFilter(instance: string, sandboxId: string): string[] {
  return [`${LABELS.instance}=${instance}`, `${LABELS.sandboxId}=${sandboxId}`];
}

/**
 * The container a sandbox runs in. Pure, so the security defaults are unit-tested: capabilities
 * dropped, no privilege escalation, a pids limit, CPU/memory limits, never privileged, binds only
 * for volumes that already passed the allowedHostPaths check.
 */
export function buildContainerCreateOptions(
  id: ContainerIdentity,
  spec: SandboxSpec,
  docker: Config['docker'],
  /** The seccomp profile's JSON text (the Engine API takes content, not a path), or "unconfined". */
  seccompProfile?: string,
  /** Shared bucket mounts and named-volume directories on this host, bound at their volumes' mount paths. */
  mountBinds: MountBind[] = [],
): Dockerode.ContainerCreateOptions {
  const securityOpt = ['no-new-privileges:true'];
  const ports = publishedPorts(spec, docker);
  if (seccompProfile) securityOpt.push(`seccomp=${seccompProfile}`);
  if (docker.apparmorProfile) securityOpt.push(`apparmor=${docker.apparmorProfile}`);
  return {
    name: containerName(id),
    Image: spec.image.uri,
    Entrypoint: spec.entrypoint,
    Cmd: [],
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ExposedPorts: Object.fromEntries(ports.map((p) => [`${p}/tcp`, {}])),
    Labels: {
      [LABELS.managed]: 'true',
      [LABELS.instance]: id.instance,
      [LABELS.sandboxId]: id.sandboxId,
      [LABELS.tenant]: id.tenant,
      [LABELS.namespace]: id.namespace,
      ...(id.pool ? { [LABELS.pool]: id.pool } : {}),
    },
    HostConfig: {
      NanoCpus: spec.resources.cpuMillis * 1_000_000,
      Memory: spec.resources.memoryBytes,
      MemorySwap: spec.resources.memoryBytes, // no swap beyond the memory limit
      PidsLimit: docker.pidsLimit,
      LogConfig: { Type: 'json-file', Config: { 'max-size': docker.logMaxSize, 'max-file': String(docker.logMaxFiles) } },
      Ulimits: [{ Name: 'nofile', Soft: docker.nofileLimit, Hard: docker.nofileLimit }],
      ...(docker.diskSize ? { StorageOpt: { size: docker.diskSize } } : {}),
      CapDrop: docker.capDrop,
      CapAdd: docker.capAdd,
      SecurityOpt: securityOpt,
      Privileged: false,
      NetworkMode: id.network,
      // Each port on a host port the engine picks, bound to publishHost only.
      PortBindings: Object.fromEntries(ports.map((p) => [`${p}/tcp`, [{ HostIp: docker.publishHost, HostPort: '' }]])),
      RestartPolicy: { Name: 'no' },
      Binds: [...spec.volumes, ...mountBinds].map((v) => `${v.hostPath}:${v.mountPath}:${v.readOnly ? 'ro' : 'rw'}`),
      Init: true,
      ...(docker.runtime ? { Runtime: docker.runtime } : {}),
    },
  };
}

/** Host and none networking publish nothing: the sandbox shares the host's ports, or has none. */
export const usesHostNetwork = (docker: Config['docker']): boolean => docker.network === 'host';

/** Container ports to publish: the declared ones, on bridge-like networks (host networking needs none). */
export function publishedPorts(spec: Pick<SandboxSpec, 'ports'>, docker: Config['docker']): number[] {
  return usesHostNetwork(docker) ? [] : declaredPorts(spec, docker);
}
