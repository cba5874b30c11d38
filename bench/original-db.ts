import { existsSync, rmSync } from 'node:fs';
import SQLite from 'better-sqlite3';
import { prng } from './readings.js';

/**
 * A database of the original service's shape (its schema is read from the fixture the original made),
 * with `readings` readings over a year of naive Europe/Berlin times with microseconds, so both
 * daylight-saving changes are in it: what `statistics import-original` is measured on.
 */
export function makeOriginalDatabase(fixture: string, path: string, readings: number, devices = 100): void {
  if (existsSync(path)) rmSync(path);
  const source = new SQLite(fixture, { readonly: true });
  const schema = source
    .prepare("select sql from sqlite_master where sql is not null and name not like 'sqlite_%'")
    .pluck()
    .all() as string[];
  const users = source.prepare('select * from "user"').all();
  const revision = source.prepare('select version_num from alembic_version').pluck().get();
  source.close();

  const db = new SQLite(path);
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  for (const statement of schema) db.exec(statement);
  db.prepare('insert into alembic_version values (?)').run(revision);
  const user = db.prepare(
    'insert into "user" values (@id, @email, @hashed_password, @is_active, @is_superuser, @is_verified)',
  );
  const device = db.prepare('insert into device (id, name, user_id) values (?, ?, ?)');
  const reading = db.prepare(
    'insert into data (id, device_id, x, y, z, create_date) values (?, ?, ?, ?, ?, ?)',
  );
  const random = prng(20_261_130);
  db.transaction(() => {
    for (const row of users) user.run(row);
    for (let id = 1; id <= devices; id++) device.run(id, `device ${id}`, id % 4 === 0 ? null : (id % 3) + 1);
    const start = Date.UTC(2025, 0, 1);
    const step = (365 * 86_400_000) / readings;
    for (let id = 1; id <= readings; id++) {
      // Berlin wall-clock time, written as the original wrote it (the offset is approximate here; only
      // its shape matters: DST days are in the range).
      const local = new Date(start + id * step + 3_600_000);
      const micros = String(Math.floor(random() * 1e6)).padStart(6, '0');
      const text = `${local.toISOString().slice(0, 19).replace('T', ' ')}.${micros}`;
      reading.run(
        id,
        (id % devices) + 1,
        random() * 200 - 100,
        random() * 50,
        Math.round(random() * 30) / 2,
        text,
      );
    }
  })();
  db.close();
}
