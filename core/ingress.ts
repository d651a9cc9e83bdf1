import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * How clients reach a port inside a sandbox.
 *
 * - `direct`: the runtime publishes the port itself (Docker `-p <host>::<port>`, or host networking)
 *   and the endpoint is `<host>:<hostPort>`.
 * - `gateway`: an ingress gateway in front of the sandboxes routes by host name (`wildcard`), by path
 *   (`uri`) or by the `OpenSandbox-Ingress-To` header (`header`). Only runtimes whose sandboxes the
 *   gateway can reach by name (Kubernetes) can use it.
 */
export const IngressSchema = z
  .object({
    mode: z.enum(['direct', 'gateway']).default('direct'),
    gateway: z
      .object({
        /** `*.domain` for wildcard routing; a domain, IP or IP:port for uri/header routing. No scheme. */
        address: z.string().min(1),
        route: z.object({ mode: z.enum(['wildcard', 'uri', 'header']) }).strict(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .prefault({});
export type IngressConfig = z.infer<typeof IngressSchema>;

export type RuntimeKind = 'docker' | 'kubernetes';

export const INGRESS_HEADER = 'OpenSandbox-Ingress-To';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/i;

function isDomain(value: string): boolean {
  if (value.length > 253) return false;
  const labels = value.split('.');
  // All-numeric names are IPv4 addresses or nothing: 999.1.1.1 is not a domain.
  if (labels.every((l) => /^\d+$/.test(l))) return false;
  return labels.every((l) => DNS_LABEL.test(l));
}

function isPort(value: string): boolean {
  return /^\d{1,5}$/.test(value) && Number(value) >= 1 && Number(value) <= 65535;
}

/**
 * A domain, an IPv4 address, a bracketed IPv6 address, or any of them with `:port`. A bare IPv6
 * address is refused: `fd00::1/<id>/<port>` is not a usable URL authority.
 */
function isHostAddress(value: string): boolean {
  if (isDomain(value) || isIP(value) === 4) return true;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) return isIP(bracketed[1]!) === 6 && (bracketed[2] === undefined || isPort(bracketed[2]));
  const hostPort = /^([^:]+):(\d+)$/.exec(value);
  return !!hostPort && (isDomain(hostPort[1]!) || isIP(hostPort[1]!) === 4) && isPort(hostPort[2]!);
}

/** Problems with an ingress configuration for a runtime, as `key: message` strings (empty = valid). */
export function ingressProblems(ingress: IngressConfig, runtime: RuntimeKind): string[] {
  if (ingress.mode === 'direct') {
    return ingress.gateway ? ['ingress.gateway: only used when ingress.mode = "gateway"'] : [];
  }
  if (runtime === 'docker') {
    return ['ingress.mode: the Docker runtime supports only "direct" (it publishes ports on the host)'];
  }
  const gateway = ingress.gateway;
  if (!gateway) return ['ingress.gateway: required when ingress.mode = "gateway"'];
  const { address } = gateway;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
    return [`ingress.gateway.address: "${address}" must not include a scheme (clients choose http or https)`];
  }
  if (address.includes('/')) return [`ingress.gateway.address: "${address}" must not contain a path`];
  if (gateway.route.mode === 'wildcard') {
    if (!address.startsWith('*.') || !isDomain(address.slice(2))) {
      return [`ingress.gateway.address: wildcard routing needs "*.<domain>", got "${address}"`];
    }
    return [];
  }
  if (!isHostAddress(address)) {
    return [`ingress.gateway.address: ${gateway.route.mode} routing needs a domain, IP or IP:port, got "${address}"`];
  }
  return [];
}

export interface Endpoint {
  endpoint: string;
  headers?: Record<string, string>;
}

/** The endpoint a gateway serves for `port` of sandbox `sandboxId`. */
export function gatewayEndpoint(gateway: NonNullable<IngressConfig['gateway']>, sandboxId: string, port: number): Endpoint {
  switch (gateway.route.mode) {
    case 'wildcard':
      return { endpoint: `${sandboxId}-${port}.${gateway.address.slice(2)}` };
    case 'uri':
      return { endpoint: `${gateway.address}/${sandboxId}/${port}` };
    case 'header':
      return { endpoint: gateway.address, headers: { [INGRESS_HEADER]: `${sandboxId}-${port}` } };
  }
}

/** `host:port`, bracketing IPv6 literals. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What resolving an endpoint needs to know about a sandbox (from its memo). */
export interface EndpointTarget {
  id: string;
  hostId?: string;
  network?: { hostNetwork: boolean; ports: Record<string, number>; host?: string };
}

/** This API's own host: its id and the addresses of ports published there. */
export interface LocalHost {
  hostId: string;
  /** Host name advertised for ports published on this host (docker.endpointHost ?? publishHost). */
  endpointHost: string;
  /** Address this server connects to for ports published on this host. */
  upstreamHost: string;
}

export type EndpointResolution =
  { ok: true; endpoint: Endpoint; upstream?: { host: string; port: number } } | { ok: false; reason: string };

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

/**
 * Where a client reaches `port` of a sandbox, by ingress mode. Only the ports the sandbox declares
 * (configured + requested) are reachable, on host networking too. `upstream` is the address this
 * server itself connects to (server proxy): the local address for a sandbox on its own host, the
 * advertised one for a sandbox on another host — unless that one is loopback there.
 */
export function resolveEndpoint(opts: {
  ingress: IngressConfig;
  sandbox: EndpointTarget;
  port: number;
  local: LocalHost;
}): EndpointResolution {
  const { ingress, sandbox, port, local } = opts;
  if (ingress.mode === 'gateway' && ingress.gateway) {
    return { ok: true, endpoint: gatewayEndpoint(ingress.gateway, sandbox.id, port) };
  }
  const network = sandbox.network;
  if (!network) return { ok: false, reason: `sandbox ${sandbox.id} is not running, so it has no endpoints` };
  const hostPortNumber = network.ports[String(port)];
  if (!hostPortNumber) {
    const known = Object.keys(network.ports).join(', ') || 'none';
    return {
      ok: false,
      reason: `port ${port} of sandbox ${sandbox.id} is not ${network.hostNetwork ? 'declared' : 'published'} (${network.hostNetwork ? 'declared' : 'published'}: ${known}); request it at create with extensions["tidebox.io/ports"]`,
    };
  }
  const advertised = network.host ?? local.endpointHost;
  const endpoint = { endpoint: hostPort(advertised, hostPortNumber) };
  const sameHost = sandbox.hostId === undefined || sandbox.hostId === local.hostId;
  if (sameHost) return { ok: true, endpoint, upstream: { host: local.upstreamHost, port: hostPortNumber } };
  if (isLoopback(advertised)) return { ok: true, endpoint };
  return { ok: true, endpoint, upstream: { host: advertised, port: hostPortNumber } };
}
