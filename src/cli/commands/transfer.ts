import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { extname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { bulkStoreOf } from '../../data/copy-readings.js';
import { type ExportFormat, exportReadings } from '../../data/export.js';
import { type ImportFormat, importReadings } from '../../data/import.js';
import { createIngest } from '../../data/ingest.js';
import { primaryReads } from '../../db/read-replicas.js';
import { KnownDevices } from '../../devices/known-devices.js';
import { parseDateRange } from '../../http/dates.js';
import { createMetrics } from '../../metrics/metrics.js';
import { withDatabase } from '../database.js';
import { CliError, EXIT, usageError } from '../exit-codes.js';
import { startProgress } from '../progress.js';

const FORMATS = ['csv', 'ndjson'] as const;
const formatByExtension: Record<string, ImportFormat> = {
  '.csv': 'csv',
  '.ndjson': 'ndjson',
  '.jsonl': 'ndjson',
};
const SHOWN_ERRORS = 20;

/**
 * `statistics import FILE`: the same import as `POST /data/import` (same parser, checks and chunks),
 * run by the operator: ingest tokens do not apply. Exit 4 when some lines were rejected.
 */
export function importCommand(program: Command): void {
  program
    .command('import')
    .description('import readings from a CSV (device_id,x,y,z[,timestamp]) or NDJSON file; - reads stdin')
    .argument('<file>', 'the file, or - for stdin')
    .addOption(
      new Option('--format <format>', 'csv or ndjson (default: from the extension)').choices(FORMATS),
    )
    .option('--json', 'print the whole report as JSON on stdout')
    .action(async (file: string, options: { format?: ImportFormat; json?: boolean }) => {
      const format = options.format ?? formatByExtension[extname(file).toLowerCase()];
      if (!format) throw usageError(`cannot tell the format of ${file}: add --format csv or --format ndjson`);
      const size = file === '-' ? 0 : statSync(file).size;
      const report = await withDatabase(async (database, config) => {
        const { db, engine } = database;
        const ingest = createIngest(db, engine, {
          devices: new KnownDevices(db, async () => {}),
          maxFutureSkewSeconds: config.maxFutureSkewSeconds,
          ingestAuth: 'open',
          metrics: createMetrics(),
          bulkStore: bulkStoreOf(database),
        });
        const progress = startProgress('import', size, 'bytes');
        let read = 0;
        const counted = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            read += chunk.length;
            progress.update(read);
            done(null, chunk);
          },
        });
        const input = (file === '-' ? process.stdin : createReadStream(file)).pipe(counted);
        try {
          return await importReadings(ingest, input, format, undefined);
        } finally {
          progress.stop();
        }
      });
      if (options.json) {
        console.log(JSON.stringify(report));
      } else {
        console.log(`stored ${report.stored} readings, rejected ${report.rejected} lines`);
        for (const { line, reason } of report.errors.slice(0, SHOWN_ERRORS))
          console.log(`  line ${line}: ${reason}`);
        if (report.rejected > SHOWN_ERRORS)
          console.log(`  ... (--json lists the first ${report.errors.length})`);
      }
      if (report.rejected > 0) throw new CliError(`${report.rejected} lines were rejected`, EXIT.partial);
    });
}

/** `statistics export`: the readings `GET /data/export` answers, to a file or stdout. */
export function exportCommand(program: Command): void {
  program
    .command('export')
    .description('export readings in time order as CSV (importable as it is) or NDJSON')
    .addOption(new Option('--format <format>', 'csv or ndjson').choices(FORMATS).default('csv'))
    .option('--device-id <id>', 'only this device', wholeNumber)
    .option('--start-date <date>', 'from this time on (ISO 8601, a date, or Unix seconds; inclusive)')
    .option('--end-date <date>', 'up to this time (inclusive)')
    .option('-o, --output <file>', 'write here instead of stdout')
    .action(
      async (options: {
        format: ExportFormat;
        deviceId?: number;
        startDate?: string;
        endDate?: string;
        output?: string;
      }) => {
        const range = parseDateRange({ start_date: options.startDate, end_date: options.endDate });
        await withDatabase(async ({ db }) => {
          const output = options.output ? createWriteStream(options.output) : process.stdout;
          await pipeline(
            exportReadings(primaryReads(db), { deviceId: options.deviceId, ...range }, options.format),
            output,
          );
        });
      },
    );
}

export function wholeNumber(text: string): number {
  if (!/^\d{1,10}$/.test(text)) throw new InvalidArgumentError('expected a whole number');
  return Number(text);
}
