import { ConfigError, listenAddress, parseConfig } from '../../core/config';
import { applyEnv } from '../../core/load-config';
import { loadConfig } from '../../core/load-config';
import { temporalAuthSummary, temporalConnectOptions } from '../../platform/temporal-setup';

describe('config', () => {
  it('when nothing is set, then the documented defaults apply', () => {
    const c = parseConfig({});
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 8080, createWaitSeconds: 60 });
    expect(c.temporal).toMatchObject({ namespace: 'default', taskQueue: 'tidebox' });
    expect(c.sandbox).toMatchObject({ minTimeoutSeconds: 60, allowedHostPaths: [] });
    expect(c.docker.capDrop).toEqual(['ALL']);
    expect(c.docker.capAdd).not.toContain('NET_RAW');
    expect(c.dataDir).toBe('.tidebox');
  });

  it.each([
    [{ defaultCpu: '32' }, 'sandbox.defaultCpu must be between 10m and sandbox.maxCpu'],
    [{ defaultCpu: '5m' }, 'sandbox.defaultCpu must be between 10m'],
    [{ maxMemory: 'lots' }, 'must be memory quantities'],
    [{ defaultMemory: '1Mi' }, 'sandbox.defaultMemory must be between 6Mi'],
  ])('when the sandbox sizes are %j, then the config is refused', (sandbox, message) => {
    expect(() => parseConfig({ sandbox })).toThrow(message);
  });

  it('when environment variables are set, then they override the file', () => {
    const c = parseConfig(
      applyEnv(
        { server: { port: 1 }, dataDir: '/a' },
        {
          TIDEBOX_PORT: '9999',
          TIDEBOX_DATA_DIR: '/b',
          TEMPORAL_ADDRESS: 'temporal:7233',
          TIDEBOX_HOST: '0.0.0.0',
          TIDEBOX_HOST_ID: '',
          TIDEBOX_WORKER_MAX_CACHED_WORKFLOWS: '0',
          TIDEBOX_VIEWS_POSTGRES_URL: 'postgres://tidebox:pw@db:5432/views',
        },
      ),
    );
    expect(c.worker.maxCachedWorkflows).toBe(0);
    expect(c.views).toEqual({
      postgresUrl: 'postgres://tidebox:pw@db:5432/views',
      poolSize: 10,
      reconcileIntervalSeconds: 300,
      reconcileGraceSeconds: 60,
    });
    expect(c.server.port).toBe(9999);
    expect(c.server.host).toBe('0.0.0.0');
    expect(c.dataDir).toBe('/b');
    expect(c.temporal.address).toBe('temporal:7233');
    expect(c.docker.hostId).toBe('local');
  });

  it.each([
    [{ server: { port: 'eighty' } }, 'server.port'],
    [{ sandbox: { allowedHostPaths: ['relative/path'] } }, 'sandbox.allowedHostPaths.0'],
    [{ server: { prot: 1 } }, 'server'],
    [{ docker: { hostId: 'Not A Label' } }, 'docker.hostId'],
    [{ server: { apiKey: 'short' } }, 'server.apiKey'],
    [{ sandbox: { minTimeoutSeconds: 100, maxTimeoutSeconds: 50 } }, 'sandbox.minTimeoutSeconds'],
    [{ worker: { maxCachedWorkflows: -1 } }, 'worker.maxCachedWorkflows'],
    [{ faults: { hangAt: ['nowhere'] } }, 'faults.hangAt.0'],
    [{ views: { postgresUrl: 'mysql://u:pw@db/v' } }, 'views.postgresUrl'],
    [{ views: { reconcileIntervalSeconds: 1 } }, 'views.reconcileIntervalSeconds'],
  ])('when the config has %j, then start-up fails naming %s', (raw, key) => {
    expect(() => parseConfig(raw)).toThrow(ConfigError);
    expect(() => parseConfig(raw)).toThrow(key);
  });

  it('when the read projection URL is refused, then the message does not repeat it (it holds a password)', () => {
    expect(() => parseConfig({ views: { postgresUrl: 'mysql://u:secret-pw@db/v' } })).toThrow(/^(?![\s\S]*secret-pw)/);
  });

  it('when TIDEBOX_CONFIG names a TOML file, then it is read and validated', () => {
    const files: Record<string, string> = { '/etc/tidebox.toml': '[server]\nport = 9090\n[sandbox]\nallowedHostPaths = ["/srv"]\n' };
    const c = loadConfig({ TIDEBOX_CONFIG: '/etc/tidebox.toml' }, (p) => files[p]!);
    expect(c.server.port).toBe(9090);
    expect(c.sandbox.allowedHostPaths).toEqual(['/srv']);
    expect(() => loadConfig({ TIDEBOX_CONFIG: '/bad.toml' }, () => 'port = = 1')).toThrow(/cannot parse/);
  });
});

describe('listen address', () => {
  it('when no API key is configured and a public host is asked for, then loopback is bound with a warning', () => {
    const r = listenAddress(parseConfig({ server: { host: '0.0.0.0' } }).server);
    expect(r.host).toBe('127.0.0.1');
    expect(r.warning).toMatch(/no API key/);
  });

  it('when an API key is configured, then the requested host is bound without warning', () => {
    expect(listenAddress(parseConfig({ server: { host: '0.0.0.0', apiKey: 'k'.repeat(16) } }).server)).toEqual({ host: '0.0.0.0' });
  });

  it('when no API key is configured on loopback, then it binds there and still warns', () => {
    const r = listenAddress(parseConfig({}).server);
    expect(r.host).toBe('127.0.0.1');
    expect(r.warning).toBeDefined();
  });
});

describe('runtime selection', () => {
  const gateway = { mode: 'gateway', gateway: { address: '*.sandboxes.example.com', route: { mode: 'wildcard' } } };

  it('when nothing is set, then sandboxes run on Docker and the Kubernetes defaults are documented ones', () => {
    const c = parseConfig({});
    expect(c.runtime.type).toBe('docker');
    expect(c.kubernetes).toMatchObject({
      namespace: 'default',
      hostId: 'kubernetes',
      provider: 'pod',
      readyTimeoutSeconds: 120,
      // The Pod Security "restricted" profile by default (docs/security.md).
      runAsNonRoot: true,
      networkPolicy: true,
      authImagePullPolicy: 'Always',
      pvcStorageSize: '1Gi',
    });
  });

  it('when the runtime comes from the environment, then kubeconfig and namespace do too', () => {
    const c = parseConfig(
      applyEnv({}, { TIDEBOX_RUNTIME: 'kubernetes', TIDEBOX_KUBECONFIG: '/etc/k.conf', TIDEBOX_KUBERNETES_NAMESPACE: 'boxes' }),
    );
    expect([c.runtime.type, c.kubernetes.kubeconfig, c.kubernetes.namespace]).toEqual(['kubernetes', '/etc/k.conf', 'boxes']);
  });

  it('when gateway ingress is configured, then Kubernetes accepts it and Docker refuses it by name', () => {
    expect(parseConfig({ runtime: { type: 'kubernetes' }, ingress: gateway }).ingress.mode).toBe('gateway');
    expect(() => parseConfig({ ingress: gateway })).toThrow(/Docker runtime supports only "direct"/);
  });

  it.each([
    [{ runtime: { type: 'firecracker' } }, 'runtime.type'],
    [{ kubernetes: { namespace: 'Not_A_Namespace' } }, 'kubernetes.namespace'],
    [{ kubernetes: { readyTimeoutSeconds: 3600 } }, 'kubernetes.readyTimeoutSeconds'],
    [{ kubernetes: { pvcStorageSize: 'big' } }, 'kubernetes.pvcStorageSize'],
    [{ kubernetes: { provider: 'deployment' } }, 'kubernetes.provider'],
  ])('when %j is given, then start-up fails naming %s', (raw, key) => {
    expect(() => parseConfig(raw)).toThrow(new RegExp(key.replace(/\./g, '\\.')));
  });
});

describe('how Tidebox authenticates to Temporal', () => {
  it("when the temporal CLI's variables are set, then they configure TLS and the API key", () => {
    const c = parseConfig(
      applyEnv(
        {},
        {
          TEMPORAL_ADDRESS: 'temporal.example:7233',
          TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/tls/ca.crt',
          TEMPORAL_TLS_CLIENT_CERT_PATH: '/tls/client.crt',
          TEMPORAL_TLS_CLIENT_KEY_PATH: '/tls/client.key',
          TEMPORAL_TLS_SERVER_NAME: 'temporal-frontend',
          TEMPORAL_API_KEY: 'k',
        },
      ),
    );
    expect(c.temporal).toMatchObject({
      address: 'temporal.example:7233',
      apiKey: 'k',
      tls: { caFile: '/tls/ca.crt', certFile: '/tls/client.crt', keyFile: '/tls/client.key', serverName: 'temporal-frontend' },
    });
  });

  it.each([
    [{ tls: {} }, 'need temporal.address'],
    [{ apiKey: 'k' }, 'need temporal.address'],
    [{ address: 't:7233', tls: { certFile: '/c' } }, 'certFile and temporal.tls.keyFile go together'],
    [{ address: 't:7233', tls: { cafile: '/c' } }, 'temporal.tls'],
  ])('when [temporal] is %j, then the config is refused', (temporal, message) => {
    expect(() => parseConfig({ temporal })).toThrow(message);
  });

  it('when only an API key is set, then the connection still uses TLS (the key never travels in clear)', () => {
    const options = temporalConnectOptions(parseConfig({ temporal: { address: 't:7233', apiKey: 'secret-key' } }));
    expect(options).toEqual({ address: 't:7233', tls: {}, apiKey: 'secret-key' });
    expect(temporalAuthSummary(options)).toBe('TLS + API key');
    expect(temporalAuthSummary(temporalConnectOptions(parseConfig({})))).toBe('plaintext');
  });

  it('when a TLS file cannot be read, then start-up stops naming the key and path', () => {
    const config = parseConfig({ temporal: { address: 't:7233', tls: { caFile: '/nonexistent/ca.crt' } } });
    expect(() => temporalConnectOptions(config)).toThrow('temporal.tls.caFile: cannot read /nonexistent/ca.crt: ENOENT');
  });
});
