import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Reads } from '../db/read-replicas.js';
import { parseDateRange } from '../http/dates.js';
import { DomainError, invalidQuery } from '../http/errors.js';
import { OPTIONAL_DEVICE_TOKEN } from '../http/openapi.js';
import { PAGE_HEADERS, sendPage } from '../http/pagination.js';
import { errorResponses } from '../http/schemas.js';
import { type BatchTurns, SMALL_BODY_BYTES } from './batch-turns.js';
import { fingerprintOf, type KeyUse } from './idempotency.js';
import { idempotencyKeyOf } from './idempotency-header.js';
import { deviceToken, type Ingest } from './ingest.js';
import { listReadings } from './queries.js';
import {
  BatchResult,
  IDEMPOTENT_REPLAYED,
  IdempotentWriteHeaders,
  IngestBody,
  MAX_BATCH,
  Reading,
  ReadingListQuery,
  ReplayedHeader,
} from './schemas.js';

const JSON_TYPE = 'application/json; charset=utf-8';

export interface DataRoutesOptions {
  /** Where the list reads (a replica when one is fit). */
  reads: Reads;
  ingest: Ingest;
  batchBodyLimitBytes: number;
  /** Where batches wait for their turn, in the order they arrived (SQLite); none: they go their way at once. */
  batchTurns: BatchTurns | undefined;
  /** Idempotency keys belong to the device's token with INGEST_AUTH=token. */
  ingestAuth: 'open' | 'token';
}

export const dataRoutes: FastifyPluginAsyncTypebox<DataRoutesOptions> = async (
  app,
  { reads, ingest, batchBodyLimitBytes, batchTurns, ingestAuth },
) => {
  app.post(
    '/data/',
    {
      bodyLimit: batchBodyLimitBytes,
      // Before the body is parsed: a batch waits for its turn with its body unread (batch-turns.ts).
      preParsing: (request, _reply, payload, done) => {
        const length = Number(request.headers['content-length']);
        if (!batchTurns || length <= SMALL_BODY_BYTES) return done(null, payload);
        batchTurns.take().then(() => done(null, payload), done);
      },
      // Before validation, so an oversized batch is refused without validating 10,000+ items. A callback
      // hook, not an async one: every reading passes here, and a promise each cost a microtask turn.
      preValidation: (request, _reply, done) => {
        const { body } = request;
        done(
          Array.isArray(body) && body.length > MAX_BATCH
            ? new DomainError(
                'PAYLOAD_TOO_LARGE',
                `A batch holds at most ${MAX_BATCH} readings; this one has ${body.length}. Split it into several requests.`,
              )
            : undefined,
        );
      },
      schema: {
        operationId: 'createReadings',
        tags: ['data'],
        summary: 'Store a reading, or a batch of up to 10,000 readings',
        description:
          "Open to everyone, unless the server runs with INGEST_AUTH=token: then the device's X-Device-Token " +
          'is needed. Answers 200, as the original did. One reading answers the stored reading; a ' +
          'batch answers how many were stored (and their ids, up to 1,000). A batch is all or nothing: a bad ' +
          'item is a 422 naming its index and field. An unknown device is a 404 for one reading, a 422 in a batch. ' +
          'With an `Idempotency-Key`, a retry stores nothing and answers the first answer again.',
        security: OPTIONAL_DEVICE_TOKEN,
        headers: IdempotentWriteHeaders,
        body: IngestBody,
        response: {
          200: {
            ...Type.Union([Reading, BatchResult], {
              description: 'One reading: the stored reading; a batch: how many were stored',
            }),
            headers: ReplayedHeader,
          },
          ...errorResponses(401, 404, 408, 409, 413, 415, 422, 503),
        },
      },
    },
    async (request, reply) => {
      // The union of the schema serializes by trying each shape at run time; the handler knows which
      // shape it answers, so it picks that shape's serializer, compiled once per route by Fastify.
      const { body } = request;
      const token = deviceToken(request);
      const store = (key?: KeyUse): Promise<Reading | BatchResult> =>
        Array.isArray(body) ? ingest.batch(body, token, key) : ingest.one(body, token, key);
      // Set once the answer is there: an error has a serializer of its own. Fastify names the type only
      // of what its default serializer writes, so a serializer of the route's own must name it too.
      const shaped = <T>(answer: T) => {
        reply
          .type(JSON_TYPE)
          .serializer(reply.compileSerializationSchema(Array.isArray(body) ? BatchResult : Reading, '200'));
        return answer;
      };
      const name = idempotencyKeyOf(request, token, ingestAuth);
      if (!name) return shaped(await store());
      const write = { ...name, fingerprint: fingerprintOf('POST', '/data/', name.scope, body) };
      const { body: answer, replayed } = await ingest.keys.once(
        name,
        write.fingerprint,
        (mode) => store({ write, mode }),
        { first: 'insert' },
      );
      if (replayed) reply.header(IDEMPOTENT_REPLAYED, 'true');
      return shaped(answer);
    },
  );

  app.get(
    '/data/',
    {
      schema: {
        operationId: 'listReadings',
        tags: ['data'],
        summary: 'List readings in time order, a page at a time',
        querystring: ReadingListQuery,
        response: {
          200: { ...Type.Array(Reading, { description: 'A page of readings' }), headers: PAGE_HEADERS },
          ...errorResponses(422, 503),
        },
      },
    },
    async (request, reply) => {
      const { limit, offset, cursor, device_id } = request.query;
      const { start, end } = parseDateRange(request.query);
      const after = parseReadingCursor(cursor);
      const rows = await reads.read((db) =>
        listReadings(db, { limit, offset, after, deviceId: device_id, start, end }),
      );
      return sendPage(request, reply, rows, limit, (last) => `${Date.parse(last.timestamp)}_${last.id}`);
    },
  );
};

function parseReadingCursor(cursor: string | undefined) {
  if (cursor === undefined) return undefined;
  const match = /^(-?\d{1,15})_(\d{1,16})$/.exec(cursor);
  if (!match) throw invalidQuery('cursor', 'invalid cursor', 'value_error.cursor');
  return { createdAt: Number(match[1]), id: Number(match[2]) };
}
