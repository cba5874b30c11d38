import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { errorResponses, NoContent } from '../http/schemas.js';
import { createAccount, logIn, REGISTERED_USER } from './accounts.js';
import type { Authenticator } from './authenticate.js';
import { revokeToken, toUserRead } from './queries.js';
import { BearerToken, LoginForm, UserCreate, UserRead } from './schemas.js';
import type { TokenService } from './tokens.js';

export interface AuthRoutesOptions {
  db: Kysely<Database>;
  tokens: TokenService;
  auth: Authenticator;
}

/** /auth/register, /auth/jwt/login and /auth/jwt/logout, with FastAPI Users' contract. */
export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, { db, tokens, auth }) => {
  app.post(
    '/auth/register',
    {
      schema: {
        tags: ['auth'],
        summary: 'Register a user',
        body: UserCreate,
        response: { 201: UserRead, ...errorResponses(400, 413, 422) },
      },
    },
    async (request, reply) => {
      const user = await createAccount(db, request.body, REGISTERED_USER);
      return reply.code(201).send(toUserRead(user));
    },
  );

  app.post(
    '/auth/jwt/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Log in with e-mail and password (OAuth2 password form)',
        consumes: ['application/x-www-form-urlencoded'],
        body: LoginForm,
        response: { 200: BearerToken, ...errorResponses(400, 413, 422) },
      },
    },
    async (request) => {
      const user = await logIn(db, request.body.username, request.body.password);
      return { access_token: await tokens.issue(user.id), token_type: 'bearer' as const };
    },
  );

  app.post(
    '/auth/jwt/logout',
    {
      onRequest: auth.activeUser,
      schema: {
        tags: ['auth'],
        summary: 'Log out: the token is refused from now on (kept on a deny list until it expires)',
        security: [{ bearer: [] }],
        response: { 204: NoContent, ...errorResponses(401) },
      },
    },
    async (request, reply) => {
      const token = request.token;
      if (token) await revokeToken(db, token.digest, token.expiresAt);
      return reply.code(204).send(null);
    },
  );
};
