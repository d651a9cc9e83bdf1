import { parseConfig } from '../../core/config';
import { gatewayEndpoint, IngressConfig, ingressProblems, resolveEndpoint } from '../../core/ingress';

const gateway = (address: string, mode: 'wildcard' | 'uri' | 'header'): IngressConfig => ({
  mode: 'gateway',
  gateway: { address, route: { mode } },
});

describe('ingress configuration rules', () => {
  it.each([
    ['wildcard *.domain', gateway('*.sandboxes.example.com', 'wildcard')],
    ['uri with a domain', gateway('gw.example.com', 'uri')],
    ['uri with an IP', gateway('10.0.0.5', 'uri')],
    ['uri with IP:port', gateway('10.0.0.5:8443', 'uri')],
    ['header with a domain:port', gateway('gw.example.com:8080', 'header')],
    ['header with [IPv6]:port', gateway('[fd00::1]:443', 'header')],
    ['uri with [IPv6]', gateway('[fd00::1]', 'uri')],
  ])('when the Kubernetes runtime is given %s, then it is accepted', (_what, ingress) => {
    expect(ingressProblems(ingress, 'kubernetes')).toEqual([]);
  });

  it.each([
    ['wildcard without "*."', gateway('sandboxes.example.com', 'wildcard'), 'wildcard routing needs'],
    ['wildcard with a bare "*."', gateway('*.', 'wildcard'), 'wildcard routing needs'],
    ['wildcard with a nested "*"', gateway('*.*.example.com', 'wildcard'), 'wildcard routing needs'],
    ['a scheme', gateway('https://gw.example.com', 'uri'), 'must not include a scheme'],
    ['a path', gateway('gw.example.com/base', 'uri'), 'must not contain a path'],
    ['a wildcard for uri routing', gateway('*.example.com', 'uri'), 'uri routing needs a domain, IP or IP:port'],
    ['a bad port for header routing', gateway('10.0.0.5:99999', 'header'), 'header routing needs'],
    ['a bare IPv6 address', gateway('fd00::1', 'uri'), 'uri routing needs'],
    ['an impossible IPv4 address', gateway('999.1.1.1', 'uri'), 'uri routing needs'],
    ['gateway mode without a gateway', { mode: 'gateway' } as IngressConfig, 'required when ingress.mode = "gateway"'],
    ['a gateway in direct mode', { mode: 'direct', gateway: { address: 'x', route: { mode: 'uri' } } } as IngressConfig, 'only used when'],
  ])('when given %s, then it is refused with a message naming the rule', (_what, ingress, message) => {
    const problems = ingressProblems(ingress, 'kubernetes');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });

  it('when the Docker runtime is configured with gateway ingress, then start-up fails: Docker allows only direct', () => {
    expect(ingressProblems(gateway('*.example.com', 'wildcard'), 'docker')[0]).toContain('supports only "direct"');
    expect(() => parseConfig({ ingress: { mode: 'gateway', gateway: { address: '*.example.com', route: { mode: 'wildcard' } } } })).toThrow(
      /ingress.mode: the Docker runtime supports only "direct"/,
    );
    expect(() => parseConfig({ ingress: { mode: 'sideways' } })).toThrow(/ingress.mode/);
    expect(parseConfig({}).ingress).toEqual({ mode: 'direct' });
  });

  it('when ports are published on a wildcard address without an advertised host, then start-up fails', () => {
    expect(() => parseConfig({ docker: { publishHost: '0.0.0.0' } })).toThrow(/docker.endpointHost: required/);
    expect(parseConfig({ docker: { publishHost: '0.0.0.0', endpointHost: 'box.example.com' } }).docker.endpointHost).toBe(
      'box.example.com',
    );
  });
});

describe('endpoint formatting', () => {
  const sandbox = { id: 'sb1', hostId: 'a', network: { hostNetwork: false, ports: { '8080': 49153, '44772': 49154 }, host: '127.0.0.1' } };
  const local = { hostId: 'a', endpointHost: '127.0.0.1', upstreamHost: '127.0.0.1' };
  const direct = { ingress: { mode: 'direct' } as IngressConfig, local };

  it('when gateway routing is wildcard, uri or header, then the endpoint has the documented shape', () => {
    expect(gatewayEndpoint({ address: '*.sbx.example.com', route: { mode: 'wildcard' } }, 'sb1', 8080)).toEqual({
      endpoint: 'sb1-8080.sbx.example.com',
    });
    expect(gatewayEndpoint({ address: '10.0.0.5:8443', route: { mode: 'uri' } }, 'sb1', 8080)).toEqual({
      endpoint: '10.0.0.5:8443/sb1/8080',
    });
    expect(gatewayEndpoint({ address: 'gw.example.com', route: { mode: 'header' } }, 'sb1', 8080)).toEqual({
      endpoint: 'gw.example.com',
      headers: { 'OpenSandbox-Ingress-To': 'sb1-8080' },
    });
    const ingress = { mode: 'gateway', gateway: { address: 'gw.example.com', route: { mode: 'uri' } } } as IngressConfig;
    expect(resolveEndpoint({ ingress, local, sandbox: { id: 'sb1' }, port: 3000 })).toEqual({
      ok: true,
      endpoint: { endpoint: 'gw.example.com/sb1/3000' },
    });
  });

  it('when direct on bridge networking, then a published port maps to host:hostPort and others are not available', () => {
    expect(resolveEndpoint({ ...direct, sandbox, port: 8080 })).toEqual({
      ok: true,
      endpoint: { endpoint: '127.0.0.1:49153' },
      upstream: { host: '127.0.0.1', port: 49153 },
    });
    const missing = resolveEndpoint({ ...direct, sandbox, port: 9999 });
    expect(missing).toMatchObject({ ok: false });
    expect(!missing.ok && missing.reason).toContain('port 9999 of sandbox sb1 is not published (published: 8080, 44772)');
  });

  it('when direct on host networking, then a declared port is host:port (IPv6 bracketed) and undeclared ports are refused', () => {
    const onHost = { id: 'sb1', hostId: 'a', network: { hostNetwork: true, ports: { '9000': 9000 }, host: '::1' } };
    expect(resolveEndpoint({ ...direct, sandbox: onHost, port: 9000 })).toMatchObject({ ok: true, endpoint: { endpoint: '[::1]:9000' } });
    // Anything else on the host (its Temporal UI, say) is not the sandbox's to hand out.
    expect(resolveEndpoint({ ...direct, sandbox: onHost, port: 8233 })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('not declared'),
    });
  });

  it('when the sandbox runs on another host, then its advertised address is used, and loopback there is not proxied from here', () => {
    const remote = { ...sandbox, hostId: 'b', network: { ...sandbox.network, host: 'box-b.example.com' } };
    expect(resolveEndpoint({ ...direct, sandbox: remote, port: 8080 })).toEqual({
      ok: true,
      endpoint: { endpoint: 'box-b.example.com:49153' },
      upstream: { host: 'box-b.example.com', port: 49153 },
    });
    const remoteLoopback = { ...sandbox, hostId: 'b' };
    const resolved = resolveEndpoint({ ...direct, sandbox: remoteLoopback, port: 8080 });
    expect(resolved).toEqual({ ok: true, endpoint: { endpoint: '127.0.0.1:49153' } });
  });

  it('when the sandbox is not running, then there is no endpoint', () => {
    expect(resolveEndpoint({ ...direct, sandbox: { id: 'sb1' }, port: 8080 })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('not running'),
    });
  });
});
