/**
 * Pages a group commit of readings writes to SQLite's write-ahead log, per b-tree (issue 10/17): every
 * page is a 4 KiB frame the log must hold, fsync at checkpoints and copy into the database. The
 * store's own code (readingStore) on a fresh file, with checkpoints off so that every commit's frames
 * stay in the log; the frames' page numbers are mapped to tables and indexes through `dbstat`.
 *
 *   npx tsx bench/wal-pages.ts [COMMITS=2000] [READINGS_PER_COMMIT=1] [MINUTES=10]
 *
 * The readings of one device, spread evenly over MINUTES (a live device: each commit merges into its
 * current minute). Run it in two checkouts to compare them; the CPU time per commit is the process's.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { readingStore } from '../src/data/reading-store.js';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';

const [commits = 2000, perCommit = 1, minutes = 10] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'wal-pages-'));
const path = join(dir, 'statistics.db');
const opened = openDatabase(`sqlite:${path}`, 'tool');
const { db } = opened;
await migrateToLatest(db);
await sql`insert into users (email, hashed_password) values ('bench@example.com', '-')`.execute(db);
await sql`insert into devices (name, user_id, created_at) values ('bench', 1, 0)`.execute(db);
const store = readingStore(db, 'sqlite');
const start = Date.UTC(2026, 0, 1);
// 4,000 readings the hour before, so that the b-trees have interior pages as a used database's have.
for (let i = 0; i < 20; i++) {
  const at = start - 3_600_000 + i * 200;
  await store.insert(
    Array.from({ length: 200 }, (_, j) => ({ device_id: 1, x: j, y: 1, z: 2, created_at: at + j })),
  );
}
await sql`pragma wal_autocheckpoint = 0`.execute(db);
await sql`pragma wal_checkpoint(TRUNCATE)`.execute(db);

const step = (minutes * 60_000) / (commits * perCommit);
const cpu = process.cpuUsage();
for (let c = 0; c < commits; c++) {
  const first = c * perCommit;
  await store.insert(
    Array.from({ length: perCommit }, (_, j) => ({
      device_id: 1,
      x: c,
      y: j,
      z: 0.5,
      created_at: start + Math.floor((first + j) * step),
    })),
  );
}
const { user, system } = process.cpuUsage(cpu);

// Frames: a 32-byte header, then a 24-byte header (page number first) and the page each.
const log = readFileSync(`${path}-wal`);
const pageSize = log.readUInt32BE(8);
const reader = new SQLite(path, { readonly: true });
const owners = new Map<number, string>();
const pages = reader.prepare('select name, pageno from dbstat').all() as { name: string; pageno: number }[];
for (const row of pages) owners.set(row.pageno, row.name);
reader.close();
const frames = new Map<string, number>();
let total = 0;
for (let at = 32; at + 24 + pageSize <= log.length; at += 24 + pageSize) {
  const page = log.readUInt32BE(at);
  const owner = page === 1 ? 'page 1 (header, schema)' : (owners.get(page) ?? 'other');
  frames.set(owner, (frames.get(owner) ?? 0) + 1);
  total++;
}
console.log(
  `${commits} commits of ${perCommit} reading(s): ${(total / commits).toFixed(2)} frames a commit, ` +
    `${Math.round((log.length - 32) / commits)} log bytes, ${((user + system) / commits).toFixed(1)} µs of CPU`,
);
for (const [owner, count] of [...frames].sort((a, b) => b[1] - a[1]))
  console.log(`  ${owner.padEnd(28)} ${(count / commits).toFixed(3)}`);
await opened.close();
rmSync(dir, { recursive: true, force: true });
