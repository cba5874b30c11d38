import { type Kysely, type Selectable, sql } from 'kysely';
import type { Database, EpochMs, UsersTable } from '../db/tables.js';
import type { UserRead } from './schemas.js';

export type UserRow = Selectable<UsersTable>;

/** SQLite hands booleans back as 0/1; the API speaks true/false. */
export function toUserRead(row: UserRow): UserRead {
  return {
    id: row.id,
    email: row.email,
    is_active: Boolean(row.is_active),
    is_superuser: Boolean(row.is_superuser),
    is_verified: Boolean(row.is_verified),
  };
}

export function findUserById(db: Kysely<Database>, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** E-mail addresses match case-insensitively, backed by the unique index on lower(email). */
export function findUserByEmail(db: Kysely<Database>, email: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', email.toLowerCase())
    .executeTakeFirst();
}

export interface NewUser {
  email: string;
  hashed_password: string;
  is_active: boolean;
  is_superuser: boolean;
  is_verified: boolean;
}

export function insertUser(db: Kysely<Database>, user: NewUser): Promise<UserRow> {
  return db.insertInto('users').values(user).returningAll().executeTakeFirstOrThrow();
}

export type UserChanges = Partial<NewUser>;

export async function updateUser(db: Kysely<Database>, id: number, changes: UserChanges): Promise<UserRow> {
  if (Object.keys(changes).length === 0) {
    return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }
  return db.updateTable('users').set(changes).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
}

/** Whether any of the token's deny-list keys (its current key, the digest older logouts stored) is listed. */
export async function isTokenRevoked(db: Kysely<Database>, keys: string[]): Promise<boolean> {
  const row = await db
    .selectFrom('revoked_tokens')
    .select('token_digest')
    .where('token_digest', 'in', keys)
    .executeTakeFirst();
  return row !== undefined;
}

/** Remembers a logged-out token until it expires, and forgets the ones that have expired since. */
export async function revokeToken(db: Kysely<Database>, digest: string, expiresAt: EpochMs): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('revoked_tokens').where('expires_at', '<', Date.now()).execute();
    await trx
      .insertInto('revoked_tokens')
      .values({ token_digest: digest, expires_at: expiresAt })
      .onConflict((conflict) => conflict.column('token_digest').doNothing())
      .execute();
  });
}
