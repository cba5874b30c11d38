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
      const config = loadConfig();
      const { db, engine } = openDatabase(config.databaseUrl);
      try {
        // A deploy step run beside the database waits for it, as the server does.
        const applied = await migrateToLatest(db, {
          waitMs: config.databaseWaitMs,
          onRetry: (line) => console.error(`${engine}: ${line}`),
        });
        console.log(
          applied.length ? `${engine}: applied ${applied.join(', ')}` : `${engine}: already up to date`,
        );
      } finally {
        await db.destroy();
      }
    });
}
