import { type Kysely, type Migration, type MigrationResultSet, Migrator } from 'kysely';
import { engineOf } from './dialect.js';
import { distributeOnCitus } from './distribution.js';
import * as initialSchema from './migrations/0001-initial-schema.js';
import * as deviceIngestTokens from './migrations/0002-device-ingest-tokens.js';
import * as readingMinutes from './migrations/0003-reading-minutes.js';
import * as idempotencyKeys from './migrations/0004-idempotency-keys.js';
import * as timePartitions from './migrations/0006-time-partitions.js';
import * as readingRollups from './migrations/0007-reading-rollups.js';
import * as deviceReadingTotals from './migrations/0008-device-reading-totals.js';

/** Listed here rather than read from disk, so the same list serves tsx, the build and the tests. */
const migrations: Record<string, Migration> = {
  '0001-initial-schema': initialSchema,
  '0002-device-ingest-tokens': deviceIngestTokens,
  '0003-reading-minutes': readingMinutes,
  '0004-idempotency-keys': idempotencyKeys,
  '0006-time-partitions': timePartitions,
  '0007-reading-rollups': readingRollups,
  '0008-device-reading-totals': deviceReadingTotals,
};

/**
 * Applies every pending migration, then distributes the tables when the database is a Citus cluster's
 * coordinator; running it again when nothing is pending is harmless.
 */
// biome-ignore lint/suspicious/noExplicitAny: the migrator works on any schema
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results }: MigrationResultSet = await migrator.migrateToLatest();
  if (error) throw error;
  const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  if (engineOf(db) === 'postgres') await distributeOnCitus(db);
  return applied;
}

/**
 * Applies the migrations up to and including `name` (or undoes those after it): how a database of an
 * earlier version is made, to rehearse an upgrade on a copy of its data.
 */
// biome-ignore lint/suspicious/noExplicitAny: the migrator works on any schema
export async function migrateTo(db: Kysely<any>, name: string): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error } = await migrator.migrateTo(name);
  if (error) throw error;
}
