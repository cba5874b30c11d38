import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { forbidden, unauthorized } from '../http/errors.js';
import { findUserById, isTokenRevoked, type UserRow } from './queries.js';
import type { TokenService, VerifiedToken } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller, once an authentication hook has run; null when anonymous. */
    user: UserRow | null;
    token: VerifiedToken | null;
  }
}

export type AuthHook = (request: FastifyRequest) => Promise<void>;

export interface Authenticator {
  /** Anonymous is fine, but a token that is sent must be valid and its user active. */
  optionalUser: AuthHook;
  activeUser: AuthHook;
  superuser: AuthHook;
}

/**
 * Bearer-token authentication as FastAPI Users does it: the scheme is matched case-insensitively,
 * another scheme counts as no token. Hooks run on onRequest, before any validation, so a caller
 * without rights learns nothing about the request (401/403 come before 404/422).
 */
export function createAuthenticator(db: Kysely<Database>, tokens: TokenService): Authenticator {
  async function resolve(request: FastifyRequest): Promise<void> {
    const match = /^bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1]) return;
    const token = await tokens.verify(match[1]);
    if (!token) throw unauthorized();
    const user = await findUserById(db, token.userId);
    if (!user?.is_active || (await isTokenRevoked(db, [token.denyKey, token.textDigest])))
      throw unauthorized();
    request.user = user;
    request.token = token;
  }

  return {
    optionalUser: resolve,
    async activeUser(request) {
      await resolve(request);
      if (!request.user) throw unauthorized();
    },
    async superuser(request) {
      await resolve(request);
      if (!request.user) throw unauthorized();
      if (!request.user.is_superuser) throw forbidden();
    },
  };
}
