import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeOriginalDatabase } from './original-db.js';
import { postgresEngine } from './postgres.js';

/**
 * `npm run bench:import-original`: times `statistics import-original` (the built CLI, as an operator
 * runs it) on a database of the original's shape with READINGS readings (default 1,000,000), into a
 * fresh SQLite file and, with BENCH_DATABASE_URL, a fresh PostgreSQL database; then a second run,
 * which finds everything there and writes nothing. Writes bench/import-original-results.json.
 */
const readings = Number(process.env.READINGS ?? 1_000_000);
const postgresAdmin = process.env.BENCH_DATABASE_URL;
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'statistics-bench-original-'));
const fixture = join(root, '..', 'shared', 'fixtures', 'original', 'statistics-original.db');
const source = join(dir, 'original.db');

interface Run {
  target: string;
  run: 'first' | 'second';
  seconds: number;
  readingsPerSecond: number;
  imported: number;
  unchanged: number;
}

function importInto(url: string, label: string, run: Run['run']): Run {
  const started = process.hrtime.bigint();
  const result = spawnSync(
    process.execPath,
    [
      join(root, 'dist', 'src', 'cli', 'main.js'),
      'import-original',
      source,
      '--source-tz',
      'Europe/Berlin',
      '--json',
    ],
    {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: url, DATA_DIR: dir, NODE_ENV: 'test' },
      encoding: 'utf8',
    },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`import-original into ${label} failed:\n${result.stderr}`);
  const report = JSON.parse(result.stdout);
  return {
    target: label,
    run,
    seconds: Math.round(seconds * 100) / 100,
    readingsPerSecond: Math.round(readings / seconds),
    imported: report.readings.imported,
    unchanged: report.readings.unchanged,
  };
}

try {
  const started = Date.now();
  makeOriginalDatabase(fixture, source, readings);
  console.log(
    `made an original database with ${readings} readings in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const runs: Run[] = [];
  const sqliteUrl = `sqlite:${join(dir, 'target.db')}`;
  runs.push(importInto(sqliteUrl, 'sqlite', 'first'), importInto(sqliteUrl, 'sqlite', 'second'));
  if (postgresAdmin) {
    const database = await postgresEngine(postgresAdmin);
    try {
      runs.push(
        importInto(database.databaseUrl, 'postgres', 'first'),
        importInto(database.databaseUrl, 'postgres', 'second'),
      );
    } finally {
      await database.dispose();
    }
  }
  console.table(runs);
  writeFileSync(
    join(root, 'bench', 'import-original-results.json'),
    `${JSON.stringify({ date: new Date().toISOString(), readings, node: process.version, runs }, null, 2)}\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
