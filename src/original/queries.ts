import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { Database, DevicesTable, ReadingsTable, UsersTable } from '../db/tables.js';

/** Bound parameters per statement stay well under SQLite's and PostgreSQL's limits. */
const IN_LIST = 1000;

async function inChunks<T, R>(values: T[], query: (chunk: T[]) => Promise<R[]>): Promise<R[]> {
  const found: R[] = [];
  for (let i = 0; i < values.length; i += IN_LIST) found.push(...(await query(values.slice(i, i + IN_LIST))));
  return found;
}

/** The target's users that share an id or an e-mail (in any case) with the given ones. */
export async function usersByIdOrEmail(
  db: Kysely<Database>,
  ids: number[],
  emails: string[],
): Promise<Selectable<UsersTable>[]> {
  const byId = await inChunks(ids, (chunk) =>
    db.selectFrom('users').selectAll().where('id', 'in', chunk).execute(),
  );
  const byEmail = await inChunks(
    emails.map((email) => email.toLowerCase()),
    (chunk) => db.selectFrom('users').selectAll().where(sql<string>`lower(email)`, 'in', chunk).execute(),
  );
  return [...new Map([...byId, ...byEmail].map((user) => [user.id, user])).values()];
}

export function devicesById(db: Kysely<Database>, ids: number[]): Promise<Selectable<DevicesTable>[]> {
  return inChunks(ids, (chunk) => db.selectFrom('devices').selectAll().where('id', 'in', chunk).execute());
}

export async function userIdsExisting(db: Kysely<Database>, ids: number[]): Promise<Set<number>> {
  const rows = await inChunks(ids, (chunk) =>
    db.selectFrom('users').select('id').where('id', 'in', chunk).execute(),
  );
  return new Set(rows.map((row) => row.id));
}

export async function insertUsersWithIds(
  trx: Transaction<Database>,
  users: Selectable<UsersTable>[],
): Promise<void> {
  for (let i = 0; i < users.length; i += IN_LIST / 10) {
    await trx
      .insertInto('users')
      .values(users.slice(i, i + IN_LIST / 10))
      .execute();
  }
}

export async function insertDevicesWithIds(
  trx: Transaction<Database>,
  devices: Selectable<DevicesTable>[],
): Promise<void> {
  for (let i = 0; i < devices.length; i += IN_LIST / 10) {
    await trx
      .insertInto('devices')
      .values(devices.slice(i, i + IN_LIST / 10))
      .execute();
  }
}

/** The readings whose ids lie in [first, last]: what an earlier run (or anything else) stored there. */
export function readingsInIdRange(
  db: Kysely<Database>,
  first: number,
  last: number,
): Promise<Selectable<ReadingsTable>[]> {
  return db.selectFrom('data').selectAll().where('id', '>=', first).where('id', '<=', last).execute();
}

export async function countReadingsInIdRange(
  db: Kysely<Database>,
  first: number,
  last: number,
): Promise<number> {
  const row = await db
    .selectFrom('data')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('id', '>=', first)
    .where('id', '<=', last)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
