import type { Kysely, Transaction } from 'kysely';
import type { ValueCollector } from './collected-values.js';
import type { Database } from './tables.js';

/**
 * What a heavy query reads with: a Kysely handle on one engine. On SQLite it is a worker's read-only
 * connection, inside a read transaction, which also collects values for exact statistics (see
 * dialect.ts collectedValues); on PostgreSQL a read-only transaction (savepoints need one).
 */
export type Reader =
  | { readonly engine: 'postgres'; readonly db: Transaction<Database> }
  | { readonly engine: 'sqlite'; readonly db: Kysely<Database>; readonly collector: ValueCollector };
