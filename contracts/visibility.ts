import { SA } from './search-attributes';
import { metadataKeywords } from '../core/metadata';

/** Which workflows a visibility query finds: by type and execution status, and Tidebox's search attributes. */
export interface VisibilityFilter {
  type: string;
  /** Default `Running` (open actors). */
  executionStatus?: 'Running' | 'Failed' | 'TimedOut';
  tenant?: string;
  /** TideboxState, any of these. */
  states?: readonly string[];
  /** TideboxMetadata, all of these `key=value` pairs. */
  metadata?: Record<string, string>;
  /** TideboxState, none of these. */
  excludeStates?: readonly string[];
  /** TideboxCreatedAt at or after this instant. */
  createdSince?: Date;
}

/** A string literal in Temporal's visibility query language. */
function quote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The visibility query for a filter (every value quoted: nothing a client sends is query syntax). */
export function visibilityQuery(filter: VisibilityFilter): string {
  const clauses = [`WorkflowType = ${quote(filter.type)}`, `ExecutionStatus = ${quote(filter.executionStatus ?? 'Running')}`];
  if (filter.tenant !== undefined) clauses.push(`${SA.tenant.name} = ${quote(filter.tenant)}`);
  if (filter.states?.length) clauses.push(`${SA.state.name} IN (${filter.states.map(quote).join(', ')})`);
  if (filter.excludeStates?.length) clauses.push(`${SA.state.name} NOT IN (${filter.excludeStates.map(quote).join(', ')})`);
  for (const kw of metadataKeywords(filter.metadata ?? {})) clauses.push(`${SA.metadata.name} = ${quote(kw)}`);
  if (filter.createdSince) clauses.push(`${SA.createdAt.name} >= ${quote(filter.createdSince.toISOString())}`);
  return clauses.join(' AND ');
}
