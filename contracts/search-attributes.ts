import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes every Tidebox actor writes. The API filters LIST on them, so GET and
 * LIST are served by the Temporal server alone. Registered at start-up (dev server flags or the
 * operator API for an existing cluster).
 */
export const SA = {
  tenant: defineSearchAttributeKey('TideboxTenant', SearchAttributeType.KEYWORD),
  state: defineSearchAttributeKey('TideboxState', SearchAttributeType.KEYWORD),
  createdAt: defineSearchAttributeKey('TideboxCreatedAt', SearchAttributeType.DATETIME),
  expiresAt: defineSearchAttributeKey('TideboxExpiresAt', SearchAttributeType.DATETIME),
  metadata: defineSearchAttributeKey('TideboxMetadata', SearchAttributeType.KEYWORD_LIST),
} as const;

/** name → the type name the Temporal CLI and operator API use. */
export const SEARCH_ATTRIBUTE_DECLARATIONS: Array<{ name: string; cliType: string }> = Object.values(SA).map((key) => ({
  name: key.name,
  cliType: cliTypeOf(key.type),
}));

function cliTypeOf(type: SearchAttributeType): string {
  switch (type) {
    case SearchAttributeType.KEYWORD:
      return 'Keyword';
    case SearchAttributeType.DATETIME:
      return 'Datetime';
    case SearchAttributeType.KEYWORD_LIST:
      return 'KeywordList';
    default:
      throw new Error(`unmapped search attribute type ${type}`);
  }
}
