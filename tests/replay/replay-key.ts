import { createHash } from 'node:crypto';

/**
 * The payload key the recorded histories are encrypted with. Public on purpose: it protects nothing
 * but the fake credentials of the recording run; production keys never touch these files.
 */
export const REPLAY_PAYLOAD_KEY = createHash('sha256').update('tidebox replay histories (test key, not a secret)').digest('base64');
