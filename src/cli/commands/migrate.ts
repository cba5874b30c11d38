import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { openDatabase } from '../../db/database.js';
import { migrateToLatest } from '../../db/migrate.js';

/** `statistics migrate`: applies pending migrations (the server also does at start); harmless to repeat. */
export function migrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply the pending database migrations to DATABASE_URL (running it again is harmless)')
    .action(async () => {
      const { db, engine } = openDatabase(loadConfig().databaseUrl);
      try {
        const applied = await migrateToLatest(db);
        console.log(
          applied.length ? `${engine}: applied ${applied.join(', ')}` : `${engine}: already up to date`,
        );
      } finally {
        await db.destroy();
      }
    });
}
