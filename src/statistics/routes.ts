import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import { findDevice } from '../devices/queries.js';
import { parseDateRange } from '../http/dates.js';
import { notFound } from '../http/errors.js';
import { errorResponses } from '../http/schemas.js';
import { findUserById } from '../users/queries.js';
import { readingStatistics } from './reading-statistics.js';
import { OwnerParams, Statistics, StatisticsQuery } from './schemas.js';

export interface StatisticsRoutesOptions {
  db: Kysely<Database>;
  engine: Engine;
}

const description =
  'Every filter given applies, together; dates are inclusive and read as UTC when they carry no zone. ' +
  'An empty selection answers 200 with count 0.';

export const statisticsRoutes: FastifyPluginAsyncTypebox<StatisticsRoutesOptions> = async (
  app,
  { db, engine },
) => {
  async function requireDevice(deviceId: number | undefined, ownerId?: number) {
    if (deviceId === undefined) return;
    const device = await findDevice(db, deviceId);
    if (!device) throw notFound(`Device ${deviceId} not found`);
    if (ownerId !== undefined && device.user_id !== ownerId) {
      throw notFound(`Device ${deviceId} does not belong to user ${ownerId}`);
    }
  }

  app.get(
    '/analyze_statistics/',
    {
      schema: {
        tags: ['statistics'],
        summary: 'Statistics of one value over all readings that match the filters',
        description,
        querystring: StatisticsQuery,
        response: { 200: Statistics, ...errorResponses(404, 422) },
      },
    },
    async (request) => {
      const { attr, device_id } = request.query;
      const range = parseDateRange(request.query);
      await requireDevice(device_id);
      return readingStatistics(db, engine, { attr, deviceId: device_id, ...range });
    },
  );

  app.get(
    '/analyze_statistics/:user_id',
    {
      schema: {
        tags: ['statistics'],
        summary: "Statistics over the readings of one user's devices",
        description: `${description} An unknown user, or a device_id that user does not own, is a 404.`,
        params: OwnerParams,
        querystring: StatisticsQuery,
        response: { 200: Statistics, ...errorResponses(404, 422) },
      },
    },
    async (request) => {
      const ownerId = request.params.user_id;
      const { attr, device_id } = request.query;
      const range = parseDateRange(request.query);
      if (!(await findUserById(db, ownerId))) throw notFound(`User ${ownerId} not found`);
      await requireDevice(device_id, ownerId);
      return readingStatistics(db, engine, { attr, deviceId: device_id, ownerId, ...range });
    },
  );
};
