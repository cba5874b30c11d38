import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { DomainError, notFound } from '../http/errors.js';
import { BEARER } from '../http/openapi.js';
import { errorResponses } from '../http/schemas.js';
import { changeAccount } from './accounts.js';
import type { Authenticator } from './authenticate.js';
import { findUserById, toUserRead, type UserRow } from './queries.js';
import { UserIdParams, UserRead, UserUpdate } from './schemas.js';

export interface UserRoutesOptions {
  db: Kysely<Database>;
  auth: Authenticator;
}

/** /users/me for everyone signed in, /users/{id} for superusers; users are deactivated, never deleted. */
export const userRoutes: FastifyPluginAsyncTypebox<UserRoutesOptions> = async (app, { db, auth }) => {
  const signedIn = (request: { user: UserRow | null }) => request.user as UserRow;

  app.get(
    '/users/me',
    {
      onRequest: auth.activeUser,
      schema: {
        operationId: 'getMe',
        tags: ['users'],
        summary: 'The signed-in user',
        security: BEARER,
        response: { 200: UserRead, ...errorResponses(401, 503) },
      },
    },
    async (request) => toUserRead(signedIn(request)),
  );

  app.patch(
    '/users/me',
    {
      onRequest: auth.activeUser,
      schema: {
        operationId: 'updateMe',
        tags: ['users'],
        summary: 'Change your e-mail or password (the flags are ignored here)',
        security: BEARER,
        body: UserUpdate,
        response: { 200: UserRead, ...errorResponses(400, 401, 408, 413, 415, 422, 503) },
      },
    },
    async (request) => toUserRead(await changeAccount(db, signedIn(request), request.body, false)),
  );

  async function userByPathId(id: string): Promise<UserRow> {
    const user = /^\d{1,10}$/.test(id) ? await findUserById(db, Number(id)) : undefined;
    if (!user) throw notFound();
    return user;
  }

  app.get(
    '/users/:id',
    {
      onRequest: auth.superuser,
      schema: {
        operationId: 'getUser',
        tags: ['users'],
        summary: 'A user (superusers only)',
        security: BEARER,
        params: UserIdParams,
        response: { 200: UserRead, ...errorResponses(401, 403, 404, 503) },
      },
    },
    async (request) => toUserRead(await userByPathId(request.params.id)),
  );

  app.patch(
    '/users/:id',
    {
      onRequest: auth.superuser,
      schema: {
        operationId: 'updateUser',
        tags: ['users'],
        summary: 'Change a user, flags included (superusers only); deactivate with is_active=false',
        security: BEARER,
        params: UserIdParams,
        body: UserUpdate,
        response: { 200: UserRead, ...errorResponses(400, 401, 403, 404, 408, 413, 415, 422, 503) },
      },
    },
    async (request) => {
      const user = await userByPathId(request.params.id);
      return toUserRead(await changeAccount(db, user, request.body, true));
    },
  );

  app.delete(
    '/users/:id',
    {
      schema: {
        operationId: 'deleteUser',
        tags: ['users'],
        summary: 'Refused for everyone: deactivate users instead (PATCH is_active=false)',
        params: UserIdParams,
        response: errorResponses(405),
      },
    },
    async () => {
      throw new DomainError(
        'METHOD_NOT_ALLOWED',
        'Deleting users is not allowed: deactivate them instead (PATCH /users/{id} with {"is_active": false})',
      );
    },
  );
};
