import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import { requireSelectable } from '../data/selection.js';
import { type Retention, readingsRetainedFrom } from '../db/maintenance.js';
import type { Database } from '../db/tables.js';
import { parseDateRange, toIsoString } from '../http/dates.js';
import { invalidQuery } from '../http/errors.js';
import { errorResponses, invalidOrTooLarge } from '../http/schemas.js';
import { allowSilenceWhileAnswering } from '../http/timeouts.js';
import type { HeavyQueries } from './heavy-runner.js';
import { laneOf } from './query-weight.js';
import type { StatisticsGroup } from './reading-statistics.js';
import {
  type Attribute,
  MAX_PERCENTILES,
  OriginalStatisticsAnswer,
  OwnerParams,
  parseAttributes,
  type Statistics,
  StatisticsAnswer,
  StatisticsQuery,
  toOriginalKeys,
} from './schemas.js';

export interface StatisticsRoutesOptions {
  db: Kysely<Database>;
  heavy: HeavyQueries;
  /** STATISTICS_KEYS: `original` answers the original service's keys, in its order. */
  keys: 'english' | 'original';
  /** RETENTION_DAYS: answers over a range that starts before the readings kept say from when they are kept. */
  retention: Retention;
  /** STATISTICS_LIGHT_READINGS: a query over at most this many readings takes the light lane. */
  lightReadings: number;
}

const description =
  'Every filter given applies, together; dates are inclusive and read as UTC when they carry no zone. ' +
  'An empty selection answers 200 with count 0.';

export const statisticsRoutes: FastifyPluginAsyncTypebox<StatisticsRoutesOptions> = async (
  app,
  { db, heavy, keys, retention, lightReadings },
) => {
  allowSilenceWhileAnswering(app, heavy.timeoutMs);
  const Answer = keys === 'original' ? OriginalStatisticsAnswer : StatisticsAnswer;
  async function answer(query: Static<typeof StatisticsQuery>, ownerId?: number) {
    const attrs = parseAttributes(query.attr);
    const range = parseDateRange(query);
    const selection = { deviceId: query.device_id, ownerId, ...range };
    const groups = await heavy.run(
      query.accuracy === 'approx' ? 'approxStatistics' : 'statistics',
      {
        attrs,
        percentiles: parsePercentiles(query.percentiles),
        groupByDevice: query.group_by === 'device',
        ...selection,
      },
      await laneOf(db, selection, lightReadings),
    );
    // The readings before the retention are gone: an answer over a range reaching back there says so.
    const retainedFrom = readingsRetainedFrom(retention, Date.now());
    const partial = retainedFrom !== undefined && (range.start === undefined || range.start < retainedFrom);
    const note = partial ? { readings_retained_from: toIsoString(retainedFrom) } : {};
    const named =
      keys === 'original'
        ? toOriginalKeys
        : (statistics: Statistics): Statistics => ({ ...statistics, ...note });
    const shape = (group: StatisticsGroup) =>
      attrs.length === 1
        ? named(group.byAttr[attrs[0] as Attribute] as Statistics)
        : Object.fromEntries(Object.entries(group.byAttr).map(([attr, stats]) => [attr, named(stats)]));
    if (query.group_by === 'device') {
      return groups.map((group) => ({ device_id: group.deviceId as number, ...shape(group) }));
    }
    return shape(groups[0] as StatisticsGroup);
  }

  app.get(
    '/analyze_statistics/',
    {
      schema: {
        operationId: 'getStatistics',
        tags: ['statistics'],
        summary: 'Statistics of the readings that match the filters',
        description,
        querystring: StatisticsQuery,
        response: { 200: Answer, ...errorResponses(404, 503), 422: invalidOrTooLarge },
      },
    },
    async (request) => {
      await requireSelectable(db, { deviceId: request.query.device_id });
      return answer(request.query);
    },
  );

  app.get(
    '/analyze_statistics/:user_id',
    {
      schema: {
        operationId: 'getUserStatistics',
        tags: ['statistics'],
        summary: "Statistics over the readings of one user's devices",
        description: `${description} An unknown user, or a device_id that user does not own, is a 404.`,
        params: OwnerParams,
        querystring: StatisticsQuery,
        response: { 200: Answer, ...errorResponses(404, 503), 422: invalidOrTooLarge },
      },
    },
    async (request) => {
      const ownerId = request.params.user_id;
      await requireSelectable(db, { deviceId: request.query.device_id, ownerId });
      return answer(request.query, ownerId);
    },
  );
};

function parsePercentiles(text: string | undefined): number[] {
  if (text === undefined) return [];
  const values = [...new Set(text.split(',').map(Number))];
  if (values.length > MAX_PERCENTILES || values.some((p) => p > 100)) {
    throw invalidQuery(
      'percentiles',
      `at most ${MAX_PERCENTILES} percentiles, each from 0 to 100`,
      'value_error.percentiles',
    );
  }
  return values;
}
