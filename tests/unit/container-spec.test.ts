import { buildContainerCreateOptions } from '../../activities/docker/container-spec';
import { parseConfig } from '../../core/config';
import type { SandboxSpec } from '../../core/sandbox';
import { idempotentSandboxId } from '../../api/temporal/sandbox-ids';

const spec: SandboxSpec = {
  image: { uri: 'busybox' },
  entrypoint: ['tail', '-f', '/dev/null'],
  env: { A: '1' },
  metadata: {},
  extensions: {},
  timeoutSeconds: 60,
  resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 },
  volumes: [{ name: 'v', hostPath: '/srv/x', mountPath: '/x', readOnly: true }],
  ports: [3000, 8080],
  ossfs: [],
};

describe('container spec', () => {
  it('when built with defaults, then it is unprivileged, capability-dropped, no-new-privileges and limited', () => {
    const docker = parseConfig({}).docker;
    const o = buildContainerCreateOptions(
      { instance: 'i', sandboxId: 's1', tenant: 't', namespace: 'team-t', network: 'tidebox-i-t' },
      spec,
      docker,
    );
    expect(o.name).toBe('tidebox-i-s1');
    expect(o.HostConfig!.NetworkMode).toBe('tidebox-i-t');
    expect(o.Labels).toMatchObject({
      'tidebox.io/sandbox-id': 's1',
      'tidebox.io/instance': 'i',
      'tidebox.io/tenant': 't',
      'tidebox.io/namespace': 'team-t',
    });
    expect(o.HostConfig).toMatchObject({
      Privileged: false,
      NanoCpus: 500_000_000,
      Memory: 64 * 2 ** 20,
      MemorySwap: 64 * 2 ** 20,
      PidsLimit: 512,
      SecurityOpt: ['no-new-privileges:true'],
      Binds: ['/srv/x:/x:ro'],
    });
    expect(o.HostConfig!.CapDrop).toEqual(['ALL']);
    expect(o.HostConfig!.CapAdd).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID', 'KILL', 'NET_BIND_SERVICE']);
    expect(o.Env).toEqual(['A=1']);
    expect(o.HostConfig!.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } });
    expect(o.HostConfig!.Ulimits).toEqual([{ Name: 'nofile', Soft: 8192, Hard: 8192 }]);
    expect(o.HostConfig).not.toHaveProperty('StorageOpt');
    const sized = buildContainerCreateOptions(
      { instance: 'i', sandboxId: 's1', tenant: 't', namespace: 'team-t', network: 'n' },
      spec,
      parseConfig({ docker: { diskSize: '10G' } }).docker,
    );
    expect(sized.HostConfig!.StorageOpt).toEqual({ size: '10G' });
  });

  it('when seccomp and AppArmor profiles are configured, then they are applied', () => {
    const docker = parseConfig({ docker: { seccompProfile: '/p.json', apparmorProfile: 'tidebox' } }).docker;
    const profile = '{"defaultAction":"SCMP_ACT_ERRNO"}';
    const o = buildContainerCreateOptions(
      { instance: 'i', sandboxId: 's1', tenant: 't', namespace: 'team-t', network: 'tidebox-i-t' },
      spec,
      docker,
      profile,
    );
    expect(o.HostConfig!.SecurityOpt).toEqual(['no-new-privileges:true', `seccomp=${profile}`, 'apparmor=tidebox']);
  });

  it('when docker.runtime names gVisor, then the container runs under it; unset, the engine default', () => {
    const id = { instance: 'i', sandboxId: 's1', tenant: 't', namespace: 'team-t', network: 'n' };
    expect(buildContainerCreateOptions(id, spec, parseConfig({ docker: { runtime: 'runsc' } }).docker).HostConfig!.Runtime).toBe('runsc');
    expect(buildContainerCreateOptions(id, spec, parseConfig({}).docker).HostConfig).not.toHaveProperty('Runtime');
    expect(() => parseConfig({ docker: { runtime: 'runsc --debug' } })).toThrow('docker.runtime');
  });
});

describe('published ports', () => {
  it('when on bridge networking, then the configured and requested ports are published once each on publishHost', () => {
    const docker = parseConfig({ docker: { exposedPorts: [44772, 8080], publishHost: '127.0.0.2' } }).docker;
    const o = buildContainerCreateOptions(
      { instance: 'i', sandboxId: 's1', tenant: 't', namespace: 'team-t', network: 'tidebox-i-t' },
      spec,
      docker,
    );
    expect(Object.keys(o.ExposedPorts!)).toEqual(['3000/tcp', '8080/tcp', '44772/tcp']);
    expect(o.HostConfig!.PortBindings).toEqual({
      '3000/tcp': [{ HostIp: '127.0.0.2', HostPort: '' }],
      '8080/tcp': [{ HostIp: '127.0.0.2', HostPort: '' }],
      '44772/tcp': [{ HostIp: '127.0.0.2', HostPort: '' }],
    });
  });

  it.each([['host'], ['none']])('when on %s networking, then nothing is published', (network) => {
    // (The API's port 8080 must not be a sandbox's on host networking: it listens elsewhere here.)
    const docker = parseConfig({ docker: { network }, server: { port: 9000 } }).docker;
    const o = buildContainerCreateOptions({ instance: 'i', sandboxId: 's1', tenant: 't', namespace: 'team-t', network }, spec, docker);
    expect(o.ExposedPorts).toEqual({});
    expect(o.HostConfig!.PortBindings).toEqual({});
    expect(o.HostConfig!.NetworkMode).toBe(network);
  });
});

describe('idempotent ids', () => {
  it('when the same tenant and key are used, then the id is the same; otherwise it differs', () => {
    const a = idempotentSandboxId('t1', 'k');
    expect(idempotentSandboxId('t1', 'k')).toBe(a);
    expect(idempotentSandboxId('t2', 'k')).not.toBe(a);
    expect(idempotentSandboxId('t1', 'k2')).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
