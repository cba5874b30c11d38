import type { Command } from 'commander';
import type { ImportOriginalReport } from '../../original/import-original.js';
import { importOriginal } from '../../original/import-original.js';
import { NotAnOriginalDatabase, OriginalSource } from '../../original/source.js';
import { withDatabase } from '../database.js';
import { CliError, usageError } from '../exit-codes.js';
import { type Progress, startProgress } from '../progress.js';
import { wholeNumber } from './transfer.js';

interface Options {
  sourceTz?: string;
  assumeUtc?: boolean;
  chunkSize: number;
  dryRun?: boolean;
  json?: boolean;
}

/**
 * `statistics import-original PATH.db --source-tz Europe/Berlin`: the move from the Python service.
 * Exit 0 when done (or nothing was left to do), 1 when the target holds conflicting rows (nothing is
 * written then), 2 for a wrong command line.
 */
export function importOriginalCommand(program: Command): void {
  program
    .command('import-original')
    .description(
      "move the original (Python) service's users, devices and readings, with their ids, into DATABASE_URL",
    )
    .argument('<path>', "the original's SQLite database (it is only read)")
    .option(
      '--source-tz <zone>',
      'the IANA time zone the original server ran in (its times are naive local times)',
    )
    .option('--assume-utc', "the original's times are UTC already")
    .option('--chunk-size <readings>', 'readings per transaction', wholeNumber, 10_000)
    .option('--dry-run', 'check and count, write nothing')
    .option('--json', 'print the report as JSON on stdout')
    .addHelpText(
      'after',
      '\nTimes that happened twice (clocks going back) take the earlier instant; times that never happened\n' +
        '(clocks going forward) move forward by the gap. Readings without a known device, with a value that\n' +
        'is not a finite number, or with an unreadable time are skipped and counted. Running it again changes\n' +
        'nothing. Use the same JWT_SECRET as the original to keep its tokens working.',
    )
    .action(async (path: string, options: Options) => {
      if (options.sourceTz !== undefined && options.assumeUtc)
        throw usageError('give --source-tz or --assume-utc, not both');
      const zone = options.assumeUtc ? 'UTC' : options.sourceTz;
      if (zone === undefined) {
        throw usageError(
          "say which time zone the original's server ran in: --source-tz ZONE (or --assume-utc)",
        );
      }
      if (options.chunkSize < 1 || options.chunkSize > 50_000)
        throw usageError('--chunk-size must be from 1 to 50000');
      let source: OriginalSource;
      try {
        source = new OriginalSource(path);
      } catch (error) {
        if (error instanceof NotAnOriginalDatabase) throw new CliError(error.message);
        throw error;
      }
      const bars = new Map<string, Progress>();
      let report: ImportOriginalReport;
      try {
        report = await withDatabase((database) =>
          importOriginal(source, database, {
            zone: checkedZone(zone),
            chunkSize: options.chunkSize,
            dryRun: options.dryRun === true,
            onProgress(phase, done, total) {
              let bar = bars.get(phase);
              if (!bar) {
                bar = startProgress(phase, total, 'readings');
                bars.set(phase, bar);
              }
              bar.update(done);
            },
          }),
        );
      } finally {
        for (const bar of bars.values()) bar.stop();
        source.close();
      }
      console.log(options.json ? JSON.stringify(report) : describeReport(report));
      if (report.conflicts.length > 0) {
        throw new CliError('refused: the target already holds different rows under the ids or e-mails above');
      }
    });
}

function checkedZone(zone: string): string {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return zone;
  } catch {
    throw usageError(`--source-tz: unknown time zone "${zone}" (an IANA name such as Europe/Berlin)`);
  }
}

function describeReport(report: ImportOriginalReport): string {
  const { users, devices, readings, times } = report;
  const skipped = readings.skipped;
  const lines = [
    `source: ${report.source.users} users, ${report.source.devices} devices, ${report.source.readings} readings` +
      (report.source.revision ? ` (Alembic revision ${report.source.revision})` : '') +
      `; times read as ${report.zone}`,
  ];
  if (report.conflicts.length > 0) {
    lines.push('conflicts (nothing was written):', ...report.conflicts.map((c) => `  ${c}`));
    if (report.moreConflicts > 0) lines.push(`  ... and ${report.moreConflicts} more`);
    return lines.join('\n');
  }
  const verb = report.dryRun ? 'would import' : 'imported';
  lines.push(
    `users: ${verb} ${users.imported}, already there ${users.unchanged}`,
    `devices: ${verb} ${devices.imported}, already there ${devices.unchanged}`,
    `readings: ${verb} ${readings.imported}, already there ${readings.unchanged}, skipped ` +
      `${skipped.orphan + skipped.invalid_value + skipped.invalid_time} (no known device ${skipped.orphan}, ` +
      `value not a finite number ${skipped.invalid_value}, unreadable time ${skipped.invalid_time})`,
    `local times: ${times.ambiguous} ambiguous (earlier instant taken), ${times.nonexistent} nonexistent (moved forward)`,
  );
  if (devices.ownerMissing.length > 0) {
    lines.push(
      `devices whose owner does not exist, imported without one: ${devices.ownerMissing.join(', ')}`,
    );
  }
  if (devices.nameCut.length > 0)
    lines.push(`device names cut to 50 characters: ${devices.nameCut.join(', ')}`);
  for (const { id, reason } of readings.skippedExamples) lines.push(`  skipped reading ${id}: ${reason}`);
  if (users.imported + devices.imported + readings.imported === 0 && !report.dryRun) {
    lines.push('nothing to do: everything was already imported');
  }
  return lines.join('\n');
}
