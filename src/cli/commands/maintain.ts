import type { Command } from 'commander';
import { maintain } from '../../db/maintenance.js';
import { withDatabase } from '../database.js';
import { CliError } from '../exit-codes.js';

/**
 * `statistics maintain`: the server's hourly maintenance, once (PostgreSQL: partitions made ahead, old
 * ones dropped; both engines: readings and rollups past RETENTION_DAYS and ROLLUP_RETENTION_DAYS removed).
 */
export function maintainCommand(program: Command): void {
  program
    .command('maintain')
    .description(
      'make the time partitions ahead and remove what is past RETENTION_DAYS and ROLLUP_RETENTION_DAYS ' +
        '(the server does it hourly)',
    )
    .option('--json', 'print the report as JSON')
    .action(async (options: { json?: boolean }) => {
      const report = await withDatabase((database, config) =>
        maintain(database.db, database.engine, config.retention),
      );
      if (!report.ran) throw new CliError('another process is running the maintenance; try again later');
      if (options.json) {
        console.log(JSON.stringify(report));
        return;
      }
      console.log(
        `partitions created: ${report.created.join(', ') || 'none'}; dropped: ${report.dropped.join(', ') || 'none'}; ` +
          `readings deleted: ${report.deletedReadings}; rollups deleted (minutes, hours, days, months): ${report.deletedRollups}`,
      );
    });
}
