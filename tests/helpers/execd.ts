import { ExecdSchema } from '../../core/execd-config';

/** execd settings as a default install has them. */
export const DEFAULT_EXECD_CONFIG = ExecdSchema.parse({});
