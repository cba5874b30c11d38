import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import { DomainError } from '../http/errors.js';
import { hashPassword, normalizeEmail, passwordProblem, verifyNothing, verifyPassword } from './passwords.js';
import { findUserByEmail, insertUser, type UserChanges, type UserRow, updateUser } from './queries.js';
import type { UserUpdate } from './schemas.js';

export interface AccountFlags {
  is_active: boolean;
  is_superuser: boolean;
  is_verified: boolean;
}

export const REGISTERED_USER: AccountFlags = { is_active: true, is_superuser: false, is_verified: false };

/** Creates an account after the same checks, in the same order, as FastAPI Users' register route. */
export async function createAccount(
  db: Kysely<Database>,
  input: { email: string; password: string },
  flags: AccountFlags,
): Promise<UserRow> {
  const email = normalizeEmail(input.email);
  const problem = passwordProblem(input.password, email);
  if (problem) {
    throw new DomainError('REGISTER_INVALID_PASSWORD', {
      code: 'REGISTER_INVALID_PASSWORD',
      reason: problem,
    });
  }
  if (await findUserByEmail(db, email)) throw new DomainError('REGISTER_USER_ALREADY_EXISTS');
  const hashed_password = await hashPassword(input.password);
  try {
    return await insertUser(db, { email, hashed_password, ...flags });
  } catch (error) {
    // Two registrations of one address at once: the unique index decides, the loser gets the same 400.
    if (isUniqueViolation(error)) throw new DomainError('REGISTER_USER_ALREADY_EXISTS');
    throw error;
  }
}

/** The user behind an e-mail and password; inactive users and wrong passwords look the same. */
export async function logIn(db: Kysely<Database>, email: string, password: string): Promise<UserRow> {
  const user = await findUserByEmail(db, email);
  if (!user) {
    await verifyNothing(password);
    throw new DomainError('LOGIN_BAD_CREDENTIALS');
  }
  const check = await verifyPassword(password, user.hashed_password);
  if (!check.valid || !user.is_active) throw new DomainError('LOGIN_BAD_CREDENTIALS');
  if (check.outdated) {
    return updateUser(db, user.id, { hashed_password: await hashPassword(password) });
  }
  return user;
}

/**
 * Applies a PATCH to a user. `privileged` (a superuser on /users/{id}) may also set the flags; anyone
 * else's flags are ignored, as FastAPI Users does. A new e-mail resets is_verified.
 */
export async function changeAccount(
  db: Kysely<Database>,
  user: UserRow,
  input: UserUpdate,
  privileged: boolean,
): Promise<UserRow> {
  const changes: UserChanges = {};
  if (input.email !== undefined) {
    const email = normalizeEmail(input.email);
    if (email !== user.email) {
      const holder = await findUserByEmail(db, email);
      if (holder && holder.id !== user.id) throw new DomainError('UPDATE_USER_EMAIL_ALREADY_EXISTS');
      changes.email = email;
      changes.is_verified = false;
    }
  }
  if (input.password !== undefined) {
    const problem = passwordProblem(input.password, user.email);
    if (problem) {
      throw new DomainError('UPDATE_USER_INVALID_PASSWORD', {
        code: 'UPDATE_USER_INVALID_PASSWORD',
        reason: problem,
      });
    }
    changes.hashed_password = await hashPassword(input.password);
  }
  if (privileged) {
    for (const flag of ['is_active', 'is_superuser', 'is_verified'] as const) {
      const value = input[flag];
      if (value !== undefined) changes[flag] = value;
    }
  }
  try {
    return await updateUser(db, user.id, changes);
  } catch (error) {
    if (isUniqueViolation(error)) throw new DomainError('UPDATE_USER_EMAIL_ALREADY_EXISTS');
    throw error;
  }
}
