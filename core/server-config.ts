import { z } from 'zod';

/** The `[server]` section: where the API listens, what it accepts, and how long it waits. */
export const ServerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.coerce.number().int().min(0).max(65535).default(8080),
    apiKey: z.string().min(16, 'must be at least 16 characters').optional(),
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024),
    /** How long POST /sandboxes waits for Running/Failed before answering 202 Pending. */
    createWaitSeconds: z.number().min(0).max(600).default(60),
    /** How long DELETE waits for Terminated before answering 204 anyway. */
    deleteWaitSeconds: z.number().min(0).max(600).default(30),
    /**
     * A tenant actor checks reservations older than this against their sandbox actors (a create that
     * crashed between reserving and starting, an actor terminated by hand), this often. Must exceed
     * any create's time between the two (temporalCallTimeoutSeconds).
     */
    quotaCheckGraceSeconds: z.number().int().min(1).max(86_400).default(120),
    quotaCheckIntervalSeconds: z.number().int().min(1).max(86_400).default(60),
    /**
     * Updates one API process sends one tenant's actor (reservations) or one pool's actor (claims)
     * at once; the rest queue here. Keep API replicas × this at or below Temporal's
     * history.maxInFlightUpdates (10 by default).
     */
    quotaReservationsInFlight: z.number().int().min(1).max(100).default(4),
    /**
     * Requests one API process lets wait for one actor's turn (above); more are refused at once with
     * 429 SERVER::BUSY. A waiter also gives up (504) after createWaitSeconds + temporalCallTimeoutSeconds.
     */
    updatesQueuedPerActor: z.number().int().min(0).max(10_000).default(200),
    /** Node's HTTP server limits: a whole request (headers and body) must arrive within requestTimeoutSeconds, its headers within headersTimeoutSeconds. */
    requestTimeoutSeconds: z.number().int().min(1).max(3600).default(300),
    headersTimeoutSeconds: z.number().int().min(1).max(300).default(30),
    /** An idle keep-alive connection is closed after this; one connection serves at most maxRequestsPerSocket requests. */
    keepAliveTimeoutSeconds: z.number().int().min(1).max(600).default(75),
    maxRequestsPerSocket: z.number().int().min(1).default(1000),
    /** Open proxied connections (HTTP requests in flight and WebSocket tunnels) one tenant may hold at once; more → 429. */
    proxyConnectionsPerTenant: z.number().int().min(1).default(256),
    /**
     * LISTs of sandboxes one tenant has running at once on one API process; more wait their turn (at
     * most listsQueuedPerTenant, then 429 SERVER::BUSY). Each LIST makes a few visibility calls, and
     * Temporal's visibility rate limit is one per namespace, shared by every tenant: this keeps one
     * tenant's burst of LISTs from spending it all.
     */
    listsInFlightPerTenant: z.number().int().min(1).max(1000).default(2),
    listsQueuedPerTenant: z.number().int().min(0).max(10_000).default(100),
    /**
     * How long a Running sandbox's view, once read, is reused by execd, the port proxy and endpoints
     * (the SDKs' calls right after a create, command loops); changes this API makes are seen at once,
     * others' within this. The host worker refuses a paused or removed sandbox itself. 0: read every time.
     */
    dataPlaneViewMs: z.number().int().min(0).max(10_000).default(1000),
    /** A proxied WebSocket or response stream with no traffic either way for this long is closed. */
    proxyIdleTimeoutSeconds: z.number().int().min(1).max(86_400).default(300),
    /** HTTP tenant provider: refused keys per client address per minute; past it, unknown keys from there get 429 without a provider call. 0 = no limit. */
    unauthenticatedPerMinute: z.number().int().min(0).default(60),
    /** Upper bound on any single call from the API into Temporal. */
    temporalCallTimeoutSeconds: z.number().min(1).max(600).default(15),
    /**
     * Host (and port) clients use to reach this server, for server-proxy endpoints
     * (`<publicHost>/sandboxes/<id>/proxy/<port>`). Unset: the request's Host header.
     */
    publicHost: z
      .string()
      .regex(/^[^/\s]+$/, 'must be host[:port] without a scheme or path')
      .optional(),
    /** The Temporal UI the dashboard (/ui) links each sandbox's workflow to; `npm start` sets its dev server's. Unset: no link. */
    temporalUiUrl: z
      .string()
      .regex(/^https?:\/\/[^\s"'<>]+$/, 'must be an http(s) URL')
      .optional(),
  })
  .strict()
  .prefault({});
