import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Kysely, sql } from 'kysely';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import { DatabaseProbe } from './database-probe.js';
import type { Lifecycle } from './lifecycle.js';

export interface HealthRoutesOptions {
  db: Kysely<Database>;
  engine: Engine;
  lifecycle: Lifecycle;
}

export const Health = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    database: Type.String({ examples: ['sqlite'] }),
  },
  { $id: 'Health', description: 'Whether the service and its database answer' },
);

export const Readiness = Type.Object(
  {
    status: Type.Union(
      ['ready', 'starting', 'draining', 'unavailable'].map((state) => Type.Literal(state)),
      {
        description:
          'ready; starting (the migrations have not run yet); draining (the process is stopping); ' +
          'unavailable (a dependency does not answer)',
      },
    ),
    checks: Type.Record(Type.String(), Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]), {
      description:
        'Each dependency, by name. `mqtt` (the broker, when MQTT ingest is on) and `redis` (when REDIS_URL is ' +
        'set) are shown but do not make the process unready: HTTP does not need them (devices publish to the ' +
        'broker meanwhile; rate limits count in each process until Redis is back)',
      examples: [{ database: 'ok' }],
    }),
  },
  { $id: 'Readiness', description: 'Whether to send traffic to this process, and why not' },
);

/** Paths that answer while the process starts: everything else waits for the migrations. */
const LIFECYCLE_PATHS = new Set(['/health', '/ready', '/metrics']);

/** While the migrations run the tables may not exist yet: only the lifecycle paths answer, others a 503. */
export function startingGate(lifecycle: Lifecycle) {
  // A callback hook, not an async one: every request passes here, and a promise each cost a microtask turn.
  return (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    if (lifecycle.state !== 'starting' || LIFECYCLE_PATHS.has(request.url.split('?')[0] ?? '')) {
      done();
      return;
    }
    reply
      .code(503)
      .header('retry-after', '2')
      .send({ detail: 'Starting: the database migrations are running; retry shortly' });
  };
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (
  app,
  { db, engine, lifecycle },
) => {
  const database = new DatabaseProbe(() => sql`select 1`.execute(db));
  app.addHook('onClose', async () => database.stop());
  lifecycle.addCheck('database', () => database.answers());

  app.get(
    '/health',
    {
      schema: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Liveness: whether the process and its database answer',
        response: { 200: Health, 503: Health },
      },
    },
    async (_request, reply) => {
      const healthy = await database.answers();
      return reply
        .code(healthy ? 200 : 503)
        .send({ status: healthy ? 'ok' : 'unavailable', database: engine });
    },
  );

  app.get(
    '/ready',
    {
      schema: {
        operationId: 'getReadiness',
        tags: ['health'],
        summary: 'Readiness: whether to send traffic here',
        description:
          '503 until the migrations have run, while a dependency does not answer, and from the start of a ' +
          'shutdown (SIGTERM) on; 200 otherwise. Liveness is /health.',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const { checks, ok } = await lifecycle.check();
      const state = lifecycle.state;
      const status = state !== 'ready' ? state : ok ? 'ready' : 'unavailable';
      return reply.code(status === 'ready' ? 200 : 503).send({ status, checks });
    },
  );
};
