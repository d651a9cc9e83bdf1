import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
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

/** Whether a host:port names this machine's loopback (where plaintext to a dev server is fine). */
export const isLoopbackAddress = (address: string): boolean => /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(address);

/** How a process authenticates to Temporal, for its start-up log line: never the key or a file's contents. */
export const temporalAuthSummary = (options: TemporalConnectOptions): string =>
  [options.tls ? (options.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plaintext', ...(options.apiKey ? ['API key'] : [])].join(' + ');

/**
 * Register Tidebox's search attributes on the namespace if any are missing. Idempotent and safe to
 * race (the API and the worker both call it at start-up against any Temporal cluster).
 */
export async function ensureSearchAttributes(operator: OperatorService, namespace: string): Promise<void> {
  const missing = async () => {
    const { customAttributes } = await operator.listSearchAttributes({ namespace });
    return SEARCH_ATTRIBUTE_DECLARATIONS.filter((d) => !(customAttributes && d.name in customAttributes));
  };
  const todo = await missing();
  if (!todo.length) return;
  try {
    await operator.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(todo.map((d) => [d.name, INDEXED_TYPES[d.cliType]!])),
    });
  } catch (err) {
    // A concurrent registration wins the race with ALREADY_EXISTS; anything still missing is real.
    const left = await missing();
    if (left.length)
      throw new Error(`cannot register search attributes ${left.map((d) => d.name).join(', ')}: ${(err as Error).message}`, { cause: err });
  }
}
