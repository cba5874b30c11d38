import { setTimeout as sleep } from 'node:timers/promises';
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
import { isDatabaseUnavailable } from './unavailable.js';

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

/** How a start waits for a database that cannot be reached yet (DATABASE_WAIT_MS). */
export interface DatabaseWait {
  /** How long to keep trying; 0: fail at the first error. */
  waitMs: number;
  /** Told of each failed try that will be tried again: a line that says why, and when. */
  onRetry?: (line: string) => void;
}

/** The first pause between tries, doubled each time up to the last. */
const FIRST_RETRY_MS = 250;
const LONGEST_RETRY_MS = 5000;

/**
 * Applies every pending migration, then distributes the tables when the database is a Citus cluster's
 * coordinator; running it again when nothing is pending is harmless. While the database cannot be
 * reached (down, starting, out of connections: `isDatabaseUnavailable`), it tries again, pausing
 * longer each time, for up to `wait.waitMs`: a server started beside its database, or at the moment
 * the database restarts, waits for it rather than exiting. Each try is whole: Kysely runs PostgreSQL's
 * migrations in one transaction under its lock, and SQLite's each in its own.
 */
export async function migrateToLatest(
  // biome-ignore lint/suspicious/noExplicitAny: the migrator works on any schema
  db: Kysely<any>,
  wait: DatabaseWait = { waitMs: 0 },
): Promise<string[]> {
  const giveUpAt = performance.now() + wait.waitMs;
  for (let pause = FIRST_RETRY_MS; ; pause = Math.min(2 * pause, LONGEST_RETRY_MS)) {
    try {
      return await migrateOnce(db);
    } catch (error) {
      const left = giveUpAt - performance.now();
      if (!isDatabaseUnavailable(error) || left <= 0) throw error;
      const retryInMs = Math.min(pause, left);
      wait.onRetry?.(
        `the database cannot be reached, trying again in ${retryInMs} ms (DATABASE_WAIT_MS: ` +
          `${wait.waitMs}): ${(error as Error).message}`,
      );
      await sleep(retryInMs);
    }
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the migrator works on any schema
async function migrateOnce(db: Kysely<any>): Promise<string[]> {
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
