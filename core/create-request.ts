/**
 * A schema-valid create request turned into the spec the sandbox actor runs: defaults applied,
 * quantities parsed, fields this runtime cannot honour refused, volumes confined to the tenant's
 * and user's storage. Pure: the API passes what it knows of the caller and the runtime.
 */
import { posix } from 'node:path';
import type { Config } from './config';
import { TideboxError } from './errors';
import type { RuntimeKind } from './ingress';
import { EXECD_EXTENSION, EXECD_PORT } from './execd';
import { imageAccessProblem } from './image-reference';
import { metadataProblems } from './metadata';
import { type OssfsSource, type OssfsVolume, ossfsEndpointProblem, ossfsOptionProblem, ossfsSourceProblems } from './mounts';
import { MIN_CPU_MILLIS, MIN_MEMORY_BYTES, parseCpuMillis, parseMemoryBytes } from './quantities';
import type { ClaimAccessMode, HostVolume, PvcVolume, SandboxSpec } from './sandbox';
import { SNAPSHOT_REPOSITORY } from './snapshots';
import { type CreateSandboxRequest, PORTS_EXTENSION } from './schemas';
import { hostVolumePath, isUnderAllowedPrefix, normalizeAbsolute, pvcVolumePaths } from './storage';
import { type StorageLayout, USER_ID_EXTENSION, userIdOf } from './tenants';

const invalid = (message: string) => new TideboxError('INVALID_PARAMETER', message);
const unsupported = (message: string) => new TideboxError('UNSUPPORTED', message);

/** Who a create request is for: its tenant (storage scoping) and how ossfs mounts are keyed. */
export interface CreateContext {
  tenant: string;
  /** The Ready snapshot a request with `snapshotId` restores (the API looked it up in the tenant). */
  snapshot?: { id: string; image: string };
  /** Names the shared mount an ossfs volume uses (keyed with the payload key); absent = ossfs refused. */
  mountKeyOf?: (source: OssfsSource) => string;
  /** Where the sandbox will run (default docker): decides which fields are offered. */
  runtime?: RuntimeKind;
  /** Workflow payloads are encrypted (security.payloadKey): credentials may travel in the input. */
  payloadsEncrypted?: boolean;
}

/**
 * Turn a schema-valid create request into the spec the sandbox actor runs. Without `mountKeyOf`
 * ossfs volumes are refused, because their credentials could not be kept out of workflow history.
 */
export function normalizeCreateRequest(req: CreateSandboxRequest, config: Config['sandbox'], ctx: CreateContext): SandboxSpec {
  if (req.snapshotId !== undefined && req.image) throw invalid('image and snapshotId are mutually exclusive');
  if (req.snapshotId === undefined && !req.image) throw invalid('image (image.uri) or snapshotId is required');
  if (req.snapshotId !== undefined && ctx.snapshot?.id !== req.snapshotId)
    throw new TideboxError('SNAPSHOT_NOT_FOUND', `snapshot ${req.snapshotId} not found`);
  const runtime = ctx.runtime ?? 'docker';
  let imageAuth: SandboxSpec['imageAuth'];
  if (req.image?.auth) {
    if (runtime !== 'kubernetes')
      throw unsupported('image.auth is supported only on the Kubernetes runtime (an image pull secret per sandbox)');
    if (!ctx.payloadsEncrypted)
      throw unsupported('image.auth needs security.payloadKey on this server (registry credentials are kept only encrypted)');
    const { username, password } = req.image.auth;
    if (!username || !password) throw invalid('image.auth needs both username and password');
    if (/[\x00-\x1f\x7f:]/.test(username)) throw invalid('image.auth.username must not contain ":" or control characters');
    imageAuth = { username, password };
  }
  if (req.image && !req.entrypoint) throw invalid('entrypoint is required when image is provided');
  const accessProblem = req.image && imageAccessProblem(req.image.uri, SNAPSHOT_REPOSITORY);
  if (accessProblem) throw invalid(accessProblem);
  // A restored sandbox runs the snapshot's image; without an entrypoint it just stays up.
  const entrypoint = req.entrypoint ?? ['tail', '-f', '/dev/null'];
  const image = req.image ? { uri: req.image.uri } : { uri: ctx.snapshot!.image };
  if (req.networkPolicy != null) throw unsupported('networkPolicy is not supported by this server; egress is not restricted');
  if (req.credentialProxy != null) throw unsupported('credentialProxy is not supported by this server');
  if (req.secureAccess) throw unsupported('secureAccess is supported only for Kubernetes gateway ingress');
  if (req.platform && req.platform.os !== 'linux') throw unsupported('only platform.os "linux" is supported');

  const limits: Record<string, string> = { cpu: config.defaultCpu, memory: config.defaultMemory, ...(req.resourceLimits ?? {}) };
  const offered = runtime === 'kubernetes' ? ['cpu', 'memory', 'gpu'] : ['cpu', 'memory'];
  const unknown = Object.keys(limits).filter((k) => !offered.includes(k));
  if (unknown.length) throw unsupported(`resourceLimits ${unknown.join(', ')} not supported on this runtime (${offered.join(', ')})`);
  let gpu: number | undefined;
  if (limits.gpu !== undefined) {
    if (!/^\d{1,3}$/.test(limits.gpu)) throw invalid(`resourceLimits.gpu "${limits.gpu}" must be a whole number of GPUs`);
    gpu = Number(limits.gpu) || undefined;
  }
  const cpuMillis = parseCpuMillis(limits.cpu ?? config.defaultCpu);
  if (cpuMillis === undefined) throw invalid(`resourceLimits.cpu "${limits.cpu}" is not a CPU quantity (e.g. "500m", "2")`);
  if (cpuMillis < MIN_CPU_MILLIS)
    throw invalid(`resourceLimits.cpu "${limits.cpu}" is below ${MIN_CPU_MILLIS}m, the least CPU the engine can enforce`);
  if (cpuMillis > parseCpuMillis(config.maxCpu)!)
    throw invalid(`resourceLimits.cpu "${limits.cpu}" exceeds this server's maximum of ${config.maxCpu}`);
  const memoryBytes = parseMemoryBytes(limits.memory ?? config.defaultMemory);
  if (memoryBytes === undefined) throw invalid(`resourceLimits.memory "${limits.memory}" is not a memory quantity (e.g. "512Mi", "1Gi")`);
  if (memoryBytes < MIN_MEMORY_BYTES)
    throw invalid(`resourceLimits.memory "${limits.memory}" is below 6Mi, the least memory the engine accepts`);
  if (memoryBytes > parseMemoryBytes(config.maxMemory)!)
    throw invalid(`resourceLimits.memory "${limits.memory}" exceeds this server's maximum of ${config.maxMemory}`);

  const env = req.env ?? {};
  const badName = Object.keys(env).find((key) => !/^[^=\0]{1,255}$/.test(key));
  if (badName !== undefined) throw invalid(`env key "${badName.slice(0, 64)}" must be 1-255 characters without "=" or NUL`);

  const metadata = req.metadata ?? {};
  const problems = metadataProblems(metadata, { strictValues: false });
  if (problems.length) throw invalid(problems.join('; '));
  const extensions = req.extensions ?? {};
  const userId = userIdOf(extensions);
  if (userId === undefined) throw invalid(`extensions["${USER_ID_EXTENSION}"] must be 1-128 letters, digits, "_" or "-"`);

  return {
    image,
    ...(req.snapshotId ? { snapshotId: req.snapshotId } : {}),
    entrypoint,
    env,
    metadata,
    extensions,
    ...(req.platform ? { platform: req.platform } : {}),
    timeoutSeconds: req.timeout ?? null,
    ...(imageAuth ? { imageAuth } : {}),
    resources: { cpuMillis, memoryBytes, ...(gpu ? { gpu } : {}) },
    ...normalizeVolumes(
      req.volumes ?? [],
      config.allowedHostPaths,
      runtime === 'kubernetes' ? undefined : ctx.mountKeyOf,
      { layout: config.storageLayout, tenant: ctx.tenant, userId },
      runtime,
    ),
    ports: withExecdPort(parsePortList(extensions[PORTS_EXTENSION]), extensions[EXECD_EXTENSION]),
  };
}

/** extensions["tidebox.io/execd"]: "image" (the image serves its own execd, so its port is published) or "tidebox" (default). */
function withExecdPort(ports: number[], execd: string | undefined): number[] {
  if (execd === undefined || execd === 'tidebox') return ports;
  if (execd !== 'image') throw invalid(`extensions["${EXECD_EXTENSION}"] must be "image" or "tidebox"`);
  return ports.includes(EXECD_PORT) ? ports : [...ports, EXECD_PORT].sort((a, b) => a - b);
}

function parsePortList(value: string | undefined): number[] {
  if (value === undefined || value.trim() === '') return [];
  const ports = value.split(',').map((p) => p.trim());
  const bad = ports.filter((p) => !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535);
  if (bad.length) throw invalid(`extensions["${PORTS_EXTENSION}"]: ${bad.map((b) => `"${b}"`).join(', ')} is not a port (1-65535)`);
  if (ports.length > 32) throw invalid(`extensions["${PORTS_EXTENSION}"]: at most 32 ports`);
  return [...new Set(ports.map(Number))].sort((a, b) => a - b);
}

/** The request's sizing of a claim to create, without the nulls the contract allows. */
function claimHints(pvc: {
  storage?: string | null;
  storageClass?: string | null;
  accessModes?: ClaimAccessMode[] | null;
}): Pick<PvcVolume, 'claim'> {
  const claim = {
    ...(pvc.storage ? { storage: pvc.storage } : {}),
    ...(pvc.storageClass ? { storageClass: pvc.storageClass } : {}),
    ...(pvc.accessModes ? { accessModes: pvc.accessModes } : {}),
  };
  return Object.keys(claim).length ? { claim } : {};
}

function hasDotDot(path: string): boolean {
  return path.split(/[\\/]/).includes('..');
}

function normalizeVolumes(
  volumes: NonNullable<CreateSandboxRequest['volumes']>,
  allowed: string[],
  mountKeyOf: ((source: OssfsSource) => string) | undefined,
  storage: { layout: StorageLayout; tenant: string; userId: string },
  runtime: RuntimeKind,
): { volumes: HostVolume[]; ossfs: OssfsVolume[]; pvcs: PvcVolume[] } {
  const names = new Set<string>();
  const mountPaths = new Set<string>();
  const host: HostVolume[] = [];
  const ossfs: OssfsVolume[] = [];
  const pvcs: PvcVolume[] = [];
  for (const v of volumes) {
    if (names.has(v.name)) throw invalid(`volume name "${v.name}" is used twice`);
    names.add(v.name);
    const backends = [v.host, v.pvc, v.ossfs].filter((b) => b !== undefined).length;
    if (backends !== 1) throw invalid(`volume "${v.name}" must specify exactly one backend (host, pvc or ossfs)`);
    if (hasDotDot(v.mountPath)) throw invalid(`volume "${v.name}": mountPath must not contain ".."`);
    const mountPath = normalizeAbsolute(v.mountPath);
    if (mountPath === '/') throw invalid(`volume "${v.name}": mountPath must not be the container's root`);
    if (mountPaths.has(mountPath)) throw invalid(`volume "${v.name}": mountPath ${mountPath} is used twice`);
    mountPaths.add(mountPath);
    if (v.subPath !== undefined && (v.subPath.startsWith('/') || hasDotDot(v.subPath) || /[\x00-\x1f\x7f]/.test(v.subPath))) {
      throw invalid(`volume "${v.name}": subPath must be relative and must not contain ".." or control characters`);
    }

    // host and pvc volumes bind <root>/<subPath>, and Docker's bind syntax has no room for ":".
    if ((v.host || v.pvc) && v.subPath?.includes(':')) throw invalid(`volume "${v.name}": subPath must not contain ":"`);

    if (v.pvc) {
      if (v.pvc.deleteOnSandboxTermination) {
        throw unsupported(
          `volume "${v.name}": deleteOnSandboxTermination is not supported (named volumes hold every user's data under ${storage.layout === 'scoped' ? '<tenant>/users/<user>' : 'one root'})`,
        );
      }
      pvcs.push({
        name: v.name,
        claimName: v.pvc.claimName,
        mountPath,
        readOnly: v.readOnly,
        createIfNotExists: v.pvc.createIfNotExists,
        ...pvcVolumePaths(v.subPath, storage),
        ...(runtime === 'kubernetes' ? claimHints(v.pvc) : {}),
      });
      continue;
    }

    if (v.ossfs) {
      if (runtime === 'kubernetes') {
        throw unsupported(
          `volume "${v.name}": ossfs volumes are not supported on the Kubernetes runtime (use a pvc backed by a CSI driver for the bucket)`,
        );
      }
      const o = v.ossfs;
      const endpointProblem = ossfsEndpointProblem(o.endpoint);
      if (endpointProblem) throw invalid(`volume "${v.name}": ${endpointProblem}`);
      const optionProblem = o.options.map((option) => ossfsOptionProblem(option, o.version)).find(Boolean);
      if (optionProblem) throw invalid(`volume "${v.name}": ${optionProblem}`);
      if (!mountKeyOf) {
        throw unsupported(
          `volume "${v.name}": this server offers no ossfs volumes (they need security.payloadKey, as credentials are kept only encrypted, and a runtime that mounts buckets: not noop)`,
        );
      }
      const prefix = v.subPath
        ? posix
            .normalize(v.subPath)
            .replace(/^\.\/?/, '')
            .replace(/\/$/, '')
        : '';
      const source: OssfsSource = {
        bucket: o.bucket,
        endpoint: o.endpoint,
        version: o.version,
        prefix: prefix === '.' ? '' : prefix,
        options: o.options,
        accessKeyId: o.accessKeyId,
        accessKeySecret: o.accessKeySecret,
      };
      // The whole source once more, as the mount activity will see it (bucket, prefix, credentials).
      const sourceProblem = ossfsSourceProblems(source)[0];
      if (sourceProblem) throw invalid(`volume "${v.name}": ${sourceProblem}`);
      ossfs.push({ name: v.name, mountPath, readOnly: v.readOnly, key: mountKeyOf(source), source });
      continue;
    }

    const raw = v.host!.path;
    if (!raw.startsWith('/')) throw invalid(`volume "${v.name}": host.path must be absolute`);
    if (hasDotDot(raw)) throw invalid(`volume "${v.name}": host.path must not contain ".."`);
    if (!isUnderAllowedPrefix(normalizeAbsolute(raw), allowed)) {
      throw invalid(
        allowed.length
          ? `volume "${v.name}": host path ${normalizeAbsolute(raw)} is outside the allowed host paths`
          : `volume "${v.name}": host volumes are disabled (no allowedHostPaths configured)`,
      );
    }
    host.push({ name: v.name, ...hostVolumePath(v.name, raw, v.subPath, allowed, storage), mountPath, readOnly: v.readOnly });
  }
  return { volumes: host, ossfs, pvcs };
}
