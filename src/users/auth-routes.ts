import formBody from '@fastify/formbody';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import type { RateLimits } from '../config.js';
import type { Database } from '../db/tables.js';
import { BEARER } from '../http/openapi.js';
import { AttemptLimit, type CountsStore } from '../http/rate-limits.js';
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
  rateLimits: RateLimits;
  /** Where the attempts are counted (memory, or Redis shared by the API processes). */
  counts: CountsStore;
}

/** /auth/register, /auth/jwt/login and /auth/jwt/logout, with FastAPI Users' contract. */
export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (
  app,
  { db, tokens, auth, rateLimits, counts },
) => {
  const limit = (name: string, attempts: number) =>
    new AttemptLimit(name, attempts, rateLimits.windowSeconds, counts);
  // Every attempt counts against the address. Failures count against the account from one address:
  // guessing from one place ends there, while the owner, elsewhere, still gets in with the password
  // (a count per account alone let anyone lock its owner out).
  const loginsPerAddress = limit('login per client address', rateLimits.loginPerAddress);
  const failedLoginsPerAccount = limit(
    'failed login per account and client address',
    rateLimits.loginPerAccount,
  );
  const registrationsPerAddress = limit('registration per client address', rateLimits.registerPerAddress);

  app.post(
    '/auth/register',
    {
      schema: {
        operationId: 'register',
        tags: ['auth'],
        summary: 'Register a user',
        body: UserCreate,
        response: { 201: UserRead, ...errorResponses(400, 408, 413, 415, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      await registrationsPerAddress.hit(request.ip);
      const user = await createAccount(db, request.body, REGISTERED_USER);
      return reply.code(201).send(toUserRead(user));
    },
  );

  // The OAuth2 password form is the one body that is not JSON: only login parses forms, so a form
  // sent to any other route is a 415, not a silently accepted body.
  await app.register(async (scope) => {
    const form = scope.withTypeProvider<TypeBoxTypeProvider>();
    await form.register(formBody);
    form.post(
      '/auth/jwt/login',
      {
        schema: {
          operationId: 'login',
          tags: ['auth'],
          summary: 'Log in with e-mail and password (OAuth2 password form)',
          consumes: ['application/x-www-form-urlencoded'],
          body: LoginForm,
          response: { 200: BearerToken, ...errorResponses(400, 408, 413, 415, 422, 429, 503) },
        },
      },
      async (request) => {
        // The address and the account are counted before the password hash is checked: counting only
        // failures, after the slow hash, let 40 parallel guesses all through.
        await loginsPerAddress.hit(request.ip);
        const accountHere = `${request.body.username.toLowerCase()} ${request.ip}`;
        await failedLoginsPerAccount.hit(accountHere);
        const user = await logIn(db, request.body.username, request.body.password);
        await failedLoginsPerAccount.reset(accountHere);
        return { access_token: await tokens.issue(user.id), token_type: 'bearer' as const };
      },
    );
  });

  app.post(
    '/auth/jwt/logout',
    {
      onRequest: auth.activeUser,
      schema: {
        operationId: 'logout',
        tags: ['auth'],
        summary: 'Log out: the token is refused from now on (kept on a deny list until it expires)',
        security: BEARER,
        response: { 204: NoContent, ...errorResponses(401, 503) },
      },
    },
    async (request, reply) => {
      const token = request.token;
      if (token) await revokeToken(db, token.denyKey, token.expiresAt);
      return reply.code(204).send(null);
    },
  );
};
