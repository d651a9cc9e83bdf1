import type Dockerode from 'dockerode';
import type { Config } from '../core/config';
import { DockerRuntime } from './docker/docker-runtime';
import { createHostActivities } from './docker/host-activities';
import { createFaults } from './faults';

/** Every activity the worker registers, built from its dependencies (no module-level clients). */
export function createActivities(deps: { config: Config; docker: Dockerode; seccompProfile?: string }) {
  const { config, docker } = deps;
  return {
    host: createHostActivities({
      runtime: new DockerRuntime(docker, config, deps.seccompProfile),
      instance: config.instance,
      allowedHostPaths: config.sandbox.allowedHostPaths,
      startupGraceMs: config.docker.startupGraceMs,
      faults: createFaults(config),
    }),
  };
}
