import { z } from 'zod';

/** `[execd]`: the execd API Tidebox serves for every sandbox (docs/execd.md). */
export const ExecdSchema = z
  .object({
    /** Serve the execd API for sandboxes (off: port 44772 is proxied like any other port). */
    enabled: z.boolean().default(true),
    /**
     * Key the per-sandbox access tokens are derived from (HMAC). Every API replica needs the same
     * one. Unset: a random key kept in `<dataDir>/execd-token.key` (one API, or replicas sharing it).
     */
    tokenSecret: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Commands (foreground and background) running at once in one sandbox; more get 429. */
    commandsPerSandbox: z.number().int().min(1).max(1024).default(16),
    /** Output a background command keeps for /logs; past it the oldest bytes are dropped. */
    backgroundLogBytes: z
      .number()
      .int()
      .min(1024)
      .default(4 * 1024 * 1024),
    /** Background output this API process keeps across all sandboxes; past it every log keeps only its newest 64 KiB. */
    logBytesTotal: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(256 * 1024 * 1024),
    /** How long a finished command's status and logs stay readable; at most finishedCommands are kept per sandbox. */
    finishedRetentionSeconds: z.number().int().min(1).default(600),
    finishedCommands: z.number().int().min(1).max(10_000).default(100),
    /** Exec sessions kept started and waiting per sandbox, so a command skips the engine's exec set-up. */
    warmExecs: z.number().int().min(0).max(8).default(1),
    /**
     * Memory for uploads held whole before they are written (the engine's archive put, which
     * needs the size first, is the fastest way in): a request whose Content-Length is at most a
     * quarter of this is held while that much is free; others stream or spool to disk. 0: never.
     * Up to a quarter of it stays allocated between uploads, for reuse (docs/execd.md).
     */
    uploadMemoryBytes: z
      .number()
      .int()
      .min(0)
      .default(256 * 1024 * 1024),
    /** The largest single file /files/upload writes. */
    maxUploadBytes: z
      .number()
      .int()
      .min(1)
      .default(4 * 1024 * 1024 * 1024),
    /**
     * Docker: the data plane runs in the host worker (it holds the engine's socket), listening here;
     * the API forwards each authorised request to `workerUrl` ({hostId} is replaced by the
     * sandbox's host id; default: http://127.0.0.1:<workerPort>, the worker beside the API).
     */
    workerHost: z.string().min(1).default('127.0.0.1'),
    workerPort: z.number().int().min(1).max(65535).default(44772),
    /**
     * Open connections the worker's listener accepts at once (the APIs keep theirs alive and reuse
     * them); past it a new connection is closed at once, so nothing that reaches the port can use up
     * the worker's file descriptors.
     */
    workerMaxConnections: z.number().int().min(16).default(2048),
    workerUrl: z
      .string()
      .regex(/^https?:\/\/[^/]+$/, 'must be http(s)://host[:port] (with {hostId} where hosts differ)')
      .optional(),
    /** The most entries /directories/list and /files/search return. */
    maxListEntries: z.number().int().min(1).default(10_000),
  })
  .strict()
  .prefault({});
export type ExecdConfig = z.infer<typeof ExecdSchema>;
