import { readFileSync } from 'node:fs';
import { defaultGrpcRetryOptions, type GrpcRetryOptions, makeGrpcRetryInterceptor, type TLSConfig } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_DECLARATIONS } from '../contracts/search-attributes';
import { ConfigError, type Config } from '../core/config';

type OperatorService = temporal.api.operatorservice.v1.OperatorService;
const IndexedValueType = temporal.api.enums.v1.IndexedValueType;

const INDEXED_TYPES: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Datetime: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  KeywordList: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

/** The Temporal frontend every process connects to: the configured cluster, else the dev server `npm start` runs. */
export const temporalAddress = (config: Pick<Config, 'temporal'>): string =>
  config.temporal.address ?? `127.0.0.1:${config.temporal.devServerPort}`;

/** How the API, the worker and the tools connect to Temporal: the same shape for the client's and the worker's connection. */
export interface TemporalConnectOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

/**
 * The connection options `[temporal]` asks for, with the TLS files read now (a file that cannot be
 * read stops start-up naming the key and path, never printing contents). An API key always travels
 * over TLS.
 */
export function temporalConnectOptions(config: Pick<Config, 'temporal'>): TemporalConnectOptions {
  const { tls, apiKey } = config.temporal;
  const read = (key: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`temporal.tls.${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const options: TemporalConnectOptions = { address: temporalAddress(config) };
  if (tls || apiKey) {
    options.tls = {
      ...(tls?.serverName ? { serverNameOverride: tls.serverName } : {}),
      ...(tls?.caFile ? { serverRootCACertificate: read('caFile', tls.caFile) } : {}),
      ...(tls?.certFile && tls.keyFile
        ? { clientCertPair: { crt: read('certFile', tls.certFile), key: read('keyFile', tls.keyFile) } }
        : {}),
    };
  }
  if (apiKey) options.apiKey = apiKey;
  return options;
}

/** gRPC's RESOURCE_EXHAUSTED status code. */
const RESOURCE_EXHAUSTED = 8;

/**
 * Whether the server refused a call because its workflow is busy for a moment, not because a rate
 * limit was reached: a Signal (or an Update) that reaches a workflow whose last workflow task tried to
 * complete it or continue it as new and failed because other messages had arrived meanwhile (refused
 * only while the next workflow task runs), or an Update beyond the workflow's in-flight Updates (10 by
 * default, each answered within a workflow task).
 */
export const isWorkflowBusyRefusal = (status: { code: number; details?: string }): boolean =>
  status.code === RESOURCE_EXHAUSTED && /workflow is closing|concurrent in-flight updates/i.test(status.details ?? '');

/** How often, and for how long, a call refused by a busy workflow is tried again: every 50–200 ms for ≈ 9 s. */
const BUSY_RETRY = { stepMs: 50, maxMs: 200, attempts: 50 };

/**
 * The client's retries for the API and the worker's activities (temporalRetryInterceptor): the SDK's,
 * except for a call refused because its workflow is busy for a moment, tried again every 50–200 ms
 * (growing by 50 ms) instead of after ≈ 1.7 s, 2.9 s, 4.9 s. The SDK backs off long on every
 * RESOURCE_EXHAUSTED, the answer of a rate limit too; a tenant actor's continue-as-new while sandbox
 * actors gave their shares back made a few expiries per continue-as-new 1–4 s late at 10,000 live.
 * Short and flat: a release waits for the refusal's end, not for the next step of a growing backoff.
 */
export function temporalRetryOptions(): GrpcRetryOptions {
  const sdk = defaultGrpcRetryOptions();
  return {
    delayFunction: (attempt, status) =>
      isWorkflowBusyRefusal(status)
        ? Math.min(BUSY_RETRY.stepMs * attempt, BUSY_RETRY.maxMs) * (0.8 + Math.random() * 0.4)
        : sdk.delayFunction(attempt, status),
    retryableDecider: (attempt, status) =>
      isWorkflowBusyRefusal(status) ? attempt < BUSY_RETRY.attempts : sdk.retryableDecider(attempt, status),
  };
}
export const temporalRetryInterceptor = () => makeGrpcRetryInterceptor(temporalRetryOptions());

/** Whether a host:port names this machine's loopback (where plaintext to a dev server is fine). */
export const isLoopbackAddress = (address: string): boolean => /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(address);

/** How a process authenticates to Temporal, for its start-up log line: never the key or a file's contents. */
export const temporalAuthSummary = (options: TemporalConnectOptions): string =>
  [options.tls ? (options.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plaintext', ...(options.apiKey ? ['API key'] : [])].join(' + ');

type WorkflowService = temporal.api.workflowservice.v1.WorkflowService;

/** How long a namespace Tidebox registers keeps closed workflows' histories (a sandbox's record after it ends). */
export const NAMESPACE_RETENTION_SECONDS = 3 * 24 * 3600;

const grpcCode = (err: unknown): number | undefined => (err as { code?: number }).code;

/** Whether a call about the namespace found it: NOT_FOUND is false, any other failure is thrown. */
const found = (call: Promise<unknown>): Promise<boolean> =>
  call.then(
    () => true,
    (err: unknown) => {
      if (grpcCode(err) === 5 /* NOT_FOUND */) return false;
      throw err;
    },
  );

/**
 * Register the namespace if it does not exist (retention {@link NAMESPACE_RETENTION_SECONDS}), so a
 * fresh cluster needs no separate set-up job. An existing namespace is left as it is — on Temporal
 * Cloud, or where operators create namespaces themselves, only the describe runs. Safe to race.
 */
async function ensureNamespace(service: WorkflowService, namespace: string): Promise<void> {
  if (await found(service.describeNamespace({ namespace }))) return;
  try {
    await service.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(NAMESPACE_RETENTION_SECONDS * 1000) });
  } catch (err) {
    if (grpcCode(err) !== 6 /* ALREADY_EXISTS: another process registered it first */) throw err;
  }
  // Describe reads the database; every other call checks the frontend's namespace cache, refreshed
  // every few seconds: wait until a call that goes through the cache is served.
  for (const deadline = Date.now() + 60_000; !(await found(service.countWorkflowExecutions({ namespace })));) {
    if (Date.now() > deadline) throw new Error(`namespace ${namespace} was registered but is not served after 60 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Register Tidebox's search attributes on the namespace if any are missing. Idempotent and safe to
 * race (the API and the worker both call it at start-up against any Temporal cluster).
 */
async function ensureSearchAttributes(operator: OperatorService, namespace: string): Promise<void> {
  const missing = async () => {
    const { customAttributes } = await operator.listSearchAttributes({ namespace }).catch((err: unknown) => {
      // A namespace registered moments ago (ensureNamespace) may not be in this cache yet: none listed.
      if (grpcCode(err) === 5 /* NOT_FOUND */) return { customAttributes: undefined };
      throw err;
    });
    return SEARCH_ATTRIBUTE_DECLARATIONS.filter((d) => !(customAttributes && d.name in customAttributes));
  };
  const todo = await missing();
  if (!todo.length) return;
  let refused: Error | undefined;
  try {
    await operator.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(todo.map((d) => [d.name, INDEXED_TYPES[d.cliType]!])),
    });
  } catch (err) {
    // A concurrent registration wins the race with ALREADY_EXISTS; anything still missing is real.
    refused = err as Error;
  }
  // A real cluster serves them from its namespace cache, refreshed every few seconds: until every
  // one is listed a create could be refused for an unknown attribute, so start-up waits.
  for (let left = await missing(), deadline = Date.now() + (refused ? 10_000 : 60_000); left.length; left = await missing()) {
    if (Date.now() > deadline)
      throw new Error(
        `cannot register search attributes ${left.map((d) => d.name).join(', ')}: ${refused?.message ?? 'not listed 60 s after registering'}`,
        {
          cause: refused,
        },
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A query naming every Tidebox search attribute, with a value of its type (it matches nothing). */
const EVERY_ATTRIBUTE_QUERY = SEARCH_ATTRIBUTE_DECLARATIONS.map((d) =>
  d.cliType === 'Datetime' ? `${d.name} < '1970-01-02T00:00:00Z'` : `${d.name} = 'tidebox-probe'`,
).join(' AND ');

/**
 * What the API and the worker do at start-up against any cluster: the namespace exists, Tidebox's
 * search attributes are registered on it, and the frontend resolves them. A new namespace's search
 * attributes reach the frontend's cache a few seconds after they are listed (SQL visibility maps them
 * per namespace); a create in between is refused ("no mapping defined for search attribute"). So
 * start-up waits until a query naming all of them is accepted. (With several frontends, the others
 * catch up within their namespace cache refresh, 2 s by default.)
 */
export async function prepareNamespace(
  services: { workflowService: WorkflowService; operatorService: OperatorService },
  namespace: string,
): Promise<void> {
  await ensureNamespace(services.workflowService, namespace);
  await ensureSearchAttributes(services.operatorService, namespace);
  for (const deadline = Date.now() + 60_000; ;) {
    try {
      await services.workflowService.countWorkflowExecutions({ namespace, query: EVERY_ATTRIBUTE_QUERY });
      return;
    } catch (err) {
      if (grpcCode(err) !== 3 /* INVALID_ARGUMENT: not resolved yet */ || Date.now() > deadline)
        throw new Error(`the search attributes of namespace ${namespace} are not usable: ${(err as Error).message}`, { cause: err });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
