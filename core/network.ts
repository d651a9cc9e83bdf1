/**
 * Network containment of sandboxes on Docker hosts: where a sandbox's traffic may go. Pure: the
 * config section and the rules of the host's egress guard; the host worker installs them
 * (activities/docker/egress-guard.ts).
 *
 * - Each tenant's sandboxes share a bridge network of their own (docker.network = "tenant"); Docker
 *   isolates bridge networks from one another, so tenants do not reach each other's sandboxes.
 * - Every such bridge is named with TENANT_BRIDGE_PREFIX, so the guard's rules match all of them,
 *   present and future, by interface name ("tbx+") and never need a per-network update.
 * - The guard drops traffic from sandboxes to the host itself (every port: the API, Temporal, the
 *   worker's metrics, anything else listening) and forwarded traffic to the deny list, always
 *   including link-local (cloud metadata). Replies to connections made to a sandbox pass.
 */
import { z } from 'zod';
import type { DockerConfig } from './docker-config';

/** Bridge interfaces of tenant networks are `tbx<12 hex>`: the guard matches `tbx+`. */
export const TENANT_BRIDGE_PREFIX = 'tbx';
/** iptables chains the guard owns (filter table): sandboxes → elsewhere, sandboxes → this host. */
const GUARD_CHAINS = { egress: 'TIDEBOX-EGRESS', input: 'TIDEBOX-INPUT' } as const;

/** Link-local (169.254.0.0/16: cloud metadata services) is denied whatever the configured list says. */
export const ALWAYS_DENIED = ['169.254.0.0/16'];

const DEFAULT_DENY_CIDRS = [
  '10.0.0.0/8', // RFC 1918
  '172.16.0.0/12', // RFC 1918
  '192.168.0.0/16', // RFC 1918
  '100.64.0.0/10', // carrier-grade NAT (RFC 6598)
  '127.0.0.0/8', // loopback, should it ever be routed
  '0.0.0.0/8', // "this network"
  '192.0.0.0/24', // IETF protocol assignments
  '198.18.0.0/15', // benchmarking
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved
];

const IPV4_CIDR = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/(3[0-2]|[12]?\d)$/;
const Cidr = z.string().regex(IPV4_CIDR, 'must be an IPv4 CIDR such as 10.0.0.0/8');

export const NetworkSchema = z
  .object({
    /**
     * "iptables": the host worker installs and keeps the egress guard (needs root or CAP_NET_ADMIN;
     * the worker refuses to start without it). "off": no guard — single-tenant development only.
     */
    guard: z.enum(['iptables', 'off']).default('iptables'),
    /** Forwarded traffic from sandboxes to these is dropped (link-local always is). */
    denyCidrs: z.array(Cidr).max(256).default(DEFAULT_DENY_CIDRS),
    /** Exceptions to the deny list, checked first (e.g. an internal package mirror). */
    allowCidrs: z.array(Cidr).max(256).default([]),
    /** The iptables-restore and iptables binaries (iptables-nft or iptables-legacy, as dockerd uses). */
    iptablesBinary: z.string().min(1).default('iptables'),
    iptablesRestoreBinary: z.string().min(1).default('iptables-restore'),
    /** How often the host worker checks the guard and puts back what is missing. */
    reconcileSeconds: z.number().min(1).max(3600).default(30),
  })
  .strict()
  .prefault({});
export type NetworkConfig = z.infer<typeof NetworkSchema>;

/**
 * The guard's two chains as an `iptables-restore --noflush` script: declaring the chains replaces
 * their contents in one transaction, so there is never a moment without the rules.
 */
export function guardRestoreScript(network: Pick<NetworkConfig, 'denyCidrs' | 'allowCidrs'>): string {
  const { egress, input } = GUARD_CHAINS;
  const deny = [...new Set([...ALWAYS_DENIED, ...network.denyCidrs])];
  return [
    '*filter',
    `:${egress} - [0:0]`,
    `:${input} - [0:0]`,
    // Replies to connections made to a sandbox (published ports, the proxy) pass.
    `-A ${egress} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
    // Into a sandbox bridge: its own network passes here; Docker's isolation drops other tenants'.
    `-A ${egress} -o ${TENANT_BRIDGE_PREFIX}+ -j RETURN`,
    // Link-local is denied before any allow-list exception can open it.
    ...ALWAYS_DENIED.map((cidr) => `-A ${egress} -d ${cidr} -j REJECT`),
    ...network.allowCidrs.map((cidr) => `-A ${egress} -d ${cidr} -j RETURN`),
    ...deny.filter((c) => !ALWAYS_DENIED.includes(c)).map((cidr) => `-A ${egress} -d ${cidr} -j REJECT`),
    `-A ${input} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
    `-A ${input} -j REJECT`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Where the guard's chains are entered: forwarded traffic (Docker's DOCKER-USER) and traffic to this host. */
export const GUARD_JUMPS: Array<{ chain: string; rule: string[] }> = [
  { chain: 'DOCKER-USER', rule: ['-i', `${TENANT_BRIDGE_PREFIX}+`, '-j', GUARD_CHAINS.egress] },
  { chain: 'INPUT', rule: ['-i', `${TENANT_BRIDGE_PREFIX}+`, '-j', GUARD_CHAINS.input] },
];

/**
 * On host networking a sandbox's declared port N is the host's port N: these ports belong to the
 * control plane (the API, Temporal and its UI, the worker's metrics) and are never a sandbox's.
 */
export function controlPlanePorts(config: {
  server: { port: number };
  temporal: { address?: string | undefined; devServerPort: number; devServerUiPort: number };
  worker: { metricsPort?: number | undefined };
}): number[] {
  const temporalPort = Number(/:(\d+)$/.exec(config.temporal.address ?? '')?.[1] ?? 7233);
  const ports = [
    config.server.port,
    temporalPort,
    config.temporal.devServerPort,
    config.temporal.devServerUiPort,
    config.worker.metricsPort,
  ];
  return [...new Set(ports.filter((p): p is number => typeof p === 'number' && p > 0))].sort((a, b) => a - b);
}

/**
 * The ports a sandbox offers: the configured set plus the request's own. Endpoints and the server
 * proxy reach only these, on host networking too (where everything else on the host is off limits).
 */
export function declaredPorts(spec: { ports: number[] }, docker: Pick<DockerConfig, 'network' | 'exposedPorts'>): number[] {
  if (docker.network === 'none') return [];
  return [...new Set([...docker.exposedPorts, ...spec.ports])].sort((a, b) => a - b);
}
