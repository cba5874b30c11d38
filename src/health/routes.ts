import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { type Kysely, sql } from 'kysely';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';

export interface HealthRoutesOptions {
  db: Kysely<Database>;
  engine: Engine;
}

export const Health = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    database: Type.String({ examples: ['sqlite'] }),
  },
  { $id: 'Health', description: 'Whether the service and its database answer' },
);

const DATABASE_PROBE_TIMEOUT_MS = 2000;

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { db, engine }) => {
  app.get(
    '/health',
    {
      schema: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Whether the service and its database answer',
        response: { 200: Health, 503: Health },
      },
    },
    async (_request, reply) => {
      const healthy = await databaseAnswers(db);
      return reply
        .code(healthy ? 200 : 503)
        .send({ status: healthy ? 'ok' : 'unavailable', database: engine });
    },
  );
};

async function databaseAnswers(db: Kysely<Database>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), DATABASE_PROBE_TIMEOUT_MS);
  });
  const probe = sql`select 1`.execute(db).then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
