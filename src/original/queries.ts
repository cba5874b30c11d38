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

/** Rows of the original stored under their own ids, a few hundred per statement. */
export async function insertWithIds<T extends 'users' | 'devices'>(
  trx: Transaction<Database>,
  table: T,
  rows: Selectable<Database[T]>[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += IN_LIST / 10) {
    await trx
      .insertInto(table)
      .values(rows.slice(i, i + IN_LIST / 10) as never)
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
