import { z } from 'zod';

/**
 * The `[temporal]` section: which Temporal frontend every process talks to, and how it proves who it
 * is. Whoever can speak to Temporal can start, signal and terminate Tidebox's workflows, so a
 * production cluster authenticates its clients (mTLS, or an API key over TLS) — docs/security.md.
 */
export const TemporalSchema = z
  .object({
    /** host:port of an existing Temporal frontend; empty = the run command starts a dev server. */
    address: z.string().optional(),
    namespace: z.string().min(1).default('default'),
    taskQueue: z.string().min(1).default('tidebox'),
    cliPath: z.string().optional(),
    devServerPort: z.number().int().min(1).max(65535).default(7233),
    devServerUiPort: z.number().int().min(1).max(65535).default(8233),
    /**
     * TLS to the frontend. Present (even empty) = TLS, verified against the system roots unless
     * `caFile` names the CA; `certFile` + `keyFile` add a client certificate (mTLS). The files are
     * read at start-up: rotate a certificate by restarting the API and the worker.
     */
    tls: z
      .object({
        caFile: z.string().min(1).optional(),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        /** The name the frontend's certificate is checked against, when it is not the address's host. */
        serverName: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /** Sent as `Authorization: Bearer <key>` on every call; implies TLS (a key never crosses the wire in clear). */
    apiKey: z.string().min(1).optional(),
  })
  .strict()
  .prefault({});

export type TemporalConfig = z.infer<typeof TemporalSchema>;

/** What is wrong with a `[temporal]` section that the schema alone cannot say, or undefined. */
export function temporalConfigProblem(temporal: TemporalConfig): string | undefined {
  const tls = temporal.tls;
  if (tls && !tls.certFile !== !tls.keyFile) return 'temporal.tls.certFile and temporal.tls.keyFile go together';
  if (!temporal.address && (tls || temporal.apiKey))
    return 'temporal.tls and temporal.apiKey need temporal.address (the dev server `npm start` runs speaks plaintext on 127.0.0.1)';
  return undefined;
}

/** Environment variables for the `[temporal]` section: the names the `temporal` CLI reads, so one set configures both. */
export const TEMPORAL_ENV_KEYS: Array<[string, string[]]> = [
  ['TEMPORAL_ADDRESS', ['temporal', 'address']],
  ['TEMPORAL_NAMESPACE', ['temporal', 'namespace']],
  ['TEMPORAL_CLI_PATH', ['temporal', 'cliPath']],
  ['TEMPORAL_API_KEY', ['temporal', 'apiKey']],
  ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', ['temporal', 'tls', 'caFile']],
  ['TEMPORAL_TLS_CLIENT_CERT_PATH', ['temporal', 'tls', 'certFile']],
  ['TEMPORAL_TLS_CLIENT_KEY_PATH', ['temporal', 'tls', 'keyFile']],
  ['TEMPORAL_TLS_SERVER_NAME', ['temporal', 'tls', 'serverName']],
];
