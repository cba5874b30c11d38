import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { backupSqlite, checkSqliteCopy } from '../../db/backup.js';
import { CliError } from '../exit-codes.js';
import { startProgress } from '../progress.js';

/**
 * `statistics backup PATH`: a consistent copy of the live SQLite database while the service keeps
 * ingesting, checked before it is reported done. PostgreSQL has pg_dump and PITR for this.
 */
export function backupCommand(program: Command): void {
  program
    .command('backup')
    .description('copy the live SQLite database to PATH, consistently, while the service runs')
    .argument('<path>', 'the file to create')
    .option('--force', 'replace PATH if it exists')
    .addHelpText('after', '\nRestore: stop the service, put the copy at the DATABASE_URL path, start it.')
    .action(async (path: string, options: { force?: boolean }) => {
      const { databaseUrl } = loadConfig();
      if (!databaseUrl.startsWith('sqlite:')) {
        throw new CliError(
          'backup copies SQLite databases; for PostgreSQL use pg_dump or PITR (docs/operations.md)',
        );
      }
      const source = databaseUrl.slice('sqlite:'.length);
      const target = resolve(path);
      if (target === source) throw new CliError('PATH is the database itself');
      if (existsSync(target)) {
        if (!options.force) throw new CliError(`${target} exists: choose another path, or add --force`);
        for (const suffix of ['', '-wal', '-shm']) rmSync(`${target}${suffix}`, { force: true });
      }
      let progress: ReturnType<typeof startProgress> | undefined;
      const started = Date.now();
      const result = await backupSqlite(source, target, ({ totalPages, remainingPages }) => {
        progress ??= startProgress('backup', totalPages, 'pages');
        progress.update(totalPages - remainingPages);
      });
      progress?.update(result.totalPages);
      progress?.stop();
      const check = checkSqliteCopy(target);
      if (check.integrity !== 'ok')
        throw new CliError(`the copy at ${target} failed integrity_check: ${check.integrity}`);
      console.log(
        `backed up ${source} to ${target}: ${result.totalPages} pages, ${check.readings} readings, ` +
          `integrity ok, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    });
}
