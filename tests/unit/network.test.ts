import { tenantNetwork } from '../../activities/docker/networks';
import { parseConfig } from '../../core/config';
import { guardRestoreScript, TENANT_BRIDGE_PREFIX } from '../../core/network';

describe('tenant networks and the egress guard', () => {
  it('when a tenant network is named, then it is per install and tenant, and its bridge matches the guard prefix within 15 characters', () => {
    const a = tenantNetwork('tidebox', 'acme');
    expect(a.name).toBe('tidebox-tidebox-acme');
    expect(a.bridge).toMatch(new RegExp(`^${TENANT_BRIDGE_PREFIX}[0-9a-f]{12}$`));
    expect(a.bridge.length).toBeLessThanOrEqual(15);
    expect(tenantNetwork('tidebox', 'globex').bridge).not.toBe(a.bridge);
    expect(tenantNetwork('other', 'acme').bridge).not.toBe(a.bridge);
  });

  it('when the guard is written, then replies pass, the own bridge passes, link-local is refused before any allow, and all else to the host is refused', () => {
    const script = guardRestoreScript(parseConfig({ network: { allowCidrs: ['10.1.2.0/24'] } }).network).split('\n');
    const egress = script.filter((l) => l.startsWith('-A TIDEBOX-EGRESS'));
    expect(egress.slice(0, 4)).toEqual([
      '-A TIDEBOX-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-A TIDEBOX-EGRESS -o tbx+ -j RETURN',
      '-A TIDEBOX-EGRESS -d 169.254.0.0/16 -j REJECT',
      '-A TIDEBOX-EGRESS -d 10.1.2.0/24 -j RETURN',
    ]);
    for (const cidr of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'])
      expect(egress).toContain(`-A TIDEBOX-EGRESS -d ${cidr} -j REJECT`);
    expect(script.filter((l) => l.startsWith('-A TIDEBOX-INPUT'))).toEqual([
      '-A TIDEBOX-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-A TIDEBOX-INPUT -j REJECT',
    ]);
    expect(script[0]).toBe('*filter');
    expect(script).toContain('COMMIT');
  });

  it('when the deny list is emptied, then link-local is still refused', () => {
    expect(guardRestoreScript(parseConfig({ network: { denyCidrs: [] } }).network)).toContain(
      '-A TIDEBOX-EGRESS -d 169.254.0.0/16 -j REJECT',
    );
  });

  it.each([
    [{ network: { denyCidrs: ['10.0.0.0/33'] } }, 'IPv4 CIDR'],
    [{ docker: { network: 'host' }, tenants: { provider: 'file', file: '/x.toml' } }, 'refused with [tenants]'],
    [{ docker: { network: 'host' } }, 'docker.exposedPorts 8080 on host networking'],
    [{ docker: { network: 'host', exposedPorts: [7233] }, server: { port: 9000 } }, 'docker.exposedPorts 7233'],
  ])('when the config is %j, then it is refused', (raw, message) => {
    expect(() => parseConfig(raw)).toThrow(message);
  });
});
