import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_DECLARATIONS } from '../contracts/search-attributes';
import type { Config } from '../core/config';

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
