import { type Config, loadConfig } from '../config.js';
import { type OpenedDatabase, openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';

/**
 * Runs `work` on the configured database, migrated first (as the server does at start), and
 * closes it afterwards whatever happens.
 */
export async function withDatabase<T>(
  work: (database: OpenedDatabase, config: Config) => Promise<T>,
  config: Config = loadConfig(),
): Promise<T> {
  const database = openDatabase(config.databaseUrl);
  try {
    await migrateToLatest(database.db);
    return await work(database, config);
  } finally {
    await database.db.destroy();
  }
}
