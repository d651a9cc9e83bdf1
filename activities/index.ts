import type Dockerode from 'dockerode';
import type { Config } from '../core/config';
import { declaredPorts, usesHostNetwork } from './docker/container-spec';
import { DockerRuntime } from './docker/docker-runtime';
import { createHostActivities } from './docker/host-activities';
import { createFaults } from './faults';
import { createMountActivities } from './ossfs/mount-activities';

/** The Docker host's activities (containers, bucket mounts), built from their dependencies (no module-level clients). */
export function createDockerActivities(deps: { config: Config; docker: Dockerode; seccompProfile?: string }) {
  const { config, docker } = deps;
  const faults = createFaults(config);
  return {
    host: createHostActivities({
      runtime: new DockerRuntime(docker, config, deps.seccompProfile),
      instance: config.instance,
      allowedHostPaths: config.sandbox.allowedHostPaths,
      startupGraceMs: config.docker.startupGraceMs,
      hostNetwork: usesHostNetwork(config.docker),
      declaredPorts: (ports) => declaredPorts({ ports }, config.docker),
      advertisedHost: config.docker.endpointHost ?? config.docker.publishHost,
      faults,
    }),
    mounts: createMountActivities({ config, faults }),
  };
}
