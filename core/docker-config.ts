import { z } from 'zod';

/** Host id: a DNS label; a host's activities run on task queue `<taskQueue>-host-<hostId>`. */
export const HostId = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label');

/** The `[docker]` section: the engine a host worker drives and how its containers are made. */
export const DockerSchema = z
  .object({
    /** Host id of this engine; its activities run on task queue `<taskQueue>-host-<hostId>`. */
    hostId: HostId.default('local'),
    socketPath: z.string().optional(),
    pidsLimit: z.number().int().min(16).default(512),
    /** Each container's log (json-file): rotated at this size, at most `logMaxFiles` files kept. A sandbox cannot fill the host's disk by printing. */
    logMaxSize: z
      .string()
      .regex(/^\d+[kmg]$/, 'must be a size such as "10m" (k, m or g)')
      .default('10m'),
    logMaxFiles: z.number().int().min(1).max(100).default(3),
    /** Open files per process (soft = hard) in every sandbox: `ulimit -n` inside. */
    nofileLimit: z.number().int().min(64).max(1_048_576).default(8192),
    /**
     * The container's writable layer size (Docker `--storage-opt size=`), e.g. "10G". Only some storage
     * drivers take it (overlay2 on xfs with pquota, btrfs, zfs): the engine refuses the create
     * otherwise. Unset: no per-container disk limit.
     */
    diskSize: z
      .string()
      .regex(/^\d+(\.\d+)?[KMGT]?B?$/i, 'must be a size such as "10G"')
      .optional(),
    /** Capabilities taken from every sandbox container: all of them, then `capAdd` gives back a few. */
    capDrop: z.array(z.string().regex(/^[A-Z_]+$/)).default(['ALL']),
    /**
     * What common images need back (package managers and init scripts change owners and users, servers
     * drop privileges and signal children). Not given back from Docker's defaults: NET_RAW (raw
     * sockets, spoofing), MKNOD, AUDIT_WRITE, SETFCAP, SETPCAP, FSETID, SYS_CHROOT.
     */
    capAdd: z
      .array(z.string().regex(/^[A-Z_]+$/))
      .default(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID', 'KILL', 'NET_BIND_SERVICE']),
    /** Path of a seccomp profile (JSON), read by the worker at start-up, or "unconfined". */
    seccompProfile: z.string().optional(),
    apparmorProfile: z.string().optional(),
    /**
     * The OCI runtime sandbox containers run under (`docker run --runtime`): e.g. "runsc" (gVisor) or
     * "kata-runtime" for a kernel of their own. Must be registered with the engine (daemon.json
     * "runtimes"); the worker refuses to start otherwise. Unset: the engine's default (runc).
     */
    runtime: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be a runtime name registered with the Docker engine')
      .optional(),
    /**
     * "tenant" (default): each tenant's sandboxes on a bridge network of their own, behind the egress
     * guard ([network]). "bridge" or another network name: that one network for everyone (no
     * isolation between tenants). "host": the host's network (refused with [tenants]).
     */
    network: z.string().default('tenant'),
    /**
     * "IfNotPresent": pull an image the engine does not have; "Never": run only images already on
     * the host (air-gapped hosts, or hosts where only an operator's pipeline may pull).
     */
    imagePullPolicy: z.enum(['IfNotPresent', 'Never']).default('IfNotPresent'),
    /**
     * Where the engine keeps named volumes (local driver), as the worker sees it: pvc volumes bind
     * `<volumeRoot>/<claimName>/_data/<scoped subPath>` (Docker < 26 cannot mount a volume's subpath).
     */
    volumeRoot: z.string().startsWith('/', 'must be absolute').default('/var/lib/docker/volumes'),
    /** Address published container ports bind on (bridge networking). */
    publishHost: z.string().min(1).default('127.0.0.1'),
    /** Host name endpoints advertise; defaults to publishHost (set it when binding 0.0.0.0). */
    endpointHost: z.string().min(1).optional(),
    /**
     * Container ports every sandbox publishes on bridge networking. The defaults are the ports the
     * OpenSandbox SDKs look up right after create besides execd (egress 18080) and 8080; execd (44772) is
     * served by Tidebox itself (docs/execd.md), or published when a request opts out with extensions["tidebox.io/execd"]="image".
     * A request adds more with `extensions["tidebox.io/ports"]` ("3000,5173").
     */
    exposedPorts: z.array(z.number().int().min(1).max(65535)).max(64).default([8080, 18080]),
    /**
     * How long a started container must stay up before its create answers Running. 0 (the default):
     * the create answers as soon as the container runs, and a container that dies after that is
     * reported by the host's exit watcher (engine events): the sandbox goes Failed with its exit code
     * and, within 10 s of its start, its last output. A window makes an entrypoint that fails within
     * it fail the create itself, at the cost of every create waiting that long.
     */
    // Capped well below the activities' 10 s heartbeat timeout.
    startupGraceMs: z.number().int().min(0).max(5_000).default(0),
    /**
     * How `host` and `pvc` volumes reach a container. "pinned": the worker opens the checked directory
     * and bind-mounts exactly it, `nosuid,nodev`, for Docker to bind — no symlink swapped in after the
     * check is followed (needs a worker with CAP_SYS_ADMIN in the engine's mount namespace, e.g. root
     * on the host). "path": Docker binds the resolved path (a worker without mount rights).
     */
    hostVolumeBinding: z.enum(['pinned', 'path']).default('pinned'),
    /** How often the host worker looks for containers no sandbox actor claims, and removes them. */
    sweepIntervalSeconds: z.number().min(1).max(3600).default(60),
    /** A container younger than this is never judged an orphan (its actor may not be visible yet). */
    orphanGraceSeconds: z.number().min(1).max(86_400).default(120),
  })
  .strict()
  .prefault({});
export type DockerConfig = z.infer<typeof DockerSchema>;
