import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { Reads } from '../db/read-replicas.js';
import type { Database } from '../db/tables.js';
import { ingestTokenDigest } from '../devices/ingest-tokens.js';
import { isIngestTokenDigest } from '../devices/queries.js';
import { parseDateRange } from '../http/dates.js';
import { DomainError, unsupportedMediaType } from '../http/errors.js';
import { OPTIONAL_DEVICE_TOKEN } from '../http/openapi.js';
import { errorResponses } from '../http/schemas.js';
import { IDLE_TIMEOUT_MS } from '../http/timeouts.js';
import { validatorCompiler } from '../http/validation.js';
import { type ExportFormat, exportReadings } from './export.js';
import { fingerprintOf } from './idempotency.js';
import { idempotencyKeyOf } from './idempotency-header.js';
import { IDLE, type ImportFormat, importReadings } from './import.js';
import { deviceToken, type Ingest } from './ingest.js';
import {
  IDEMPOTENT_REPLAYED,
  IdempotentWriteHeaders,
  ImportReport,
  ReadingFilters,
  ReplayedHeader,
} from './schemas.js';

export interface TransferRoutesOptions {
  /** The primary: the ingest token check must see a token just rotated. */
  db: Kysely<Database>;
  /** Where exports read (a replica when one is fit). */
  reads: Reads;
  ingest: Ingest;
  ingestAuth: 'open' | 'token';
}

const formatByType: Record<string, ImportFormat> = {
  'text/csv': 'csv',
  'application/x-ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
};

/** Bulk import and export of readings as CSV or NDJSON, streamed both ways. */
export const transferRoutes: FastifyPluginAsyncTypebox<TransferRoutesOptions> = async (
  app,
  { db, reads, ingest, ingestAuth },
) => {
  // The body reaches the handler as the raw stream: it is read line by line, never held whole.
  app.addContentTypeParser(Object.keys(formatByType), (_request, payload, done) => done(null, payload));

  app.post(
    '/data/import',
    {
      config: { streamedBody: true },
      // With INGEST_AUTH=token, an import without a device's token is refused before a byte of its
      // body is read: reading (and parsing) it first let anyone make the server work on any body.
      onRequest: async (request) => {
        if (ingestAuth !== 'token') return;
        const token = deviceToken(request);
        if (token === undefined || !(await isIngestTokenDigest(db, ingestTokenDigest(token)))) {
          throw new DomainError(
            'UNAUTHORIZED',
            "The import needs a device's ingest token in the X-Device-Token header",
          );
        }
      },
      // The body is a stream; each line is checked as it is read, with the same rules as POST /data/.
      validatorCompiler: (schema) => (schema.httpPart === 'body' ? () => true : validatorCompiler(schema)),
      schema: {
        operationId: 'importReadings',
        tags: ['data'],
        summary: 'Import readings from CSV or NDJSON, of any size',
        description:
          'Content-Type `text/csv` (lines `device_id,x,y,z[,timestamp]`, an optional header line) or ' +
          '`application/x-ndjson` (one reading object per line, as for POST /data/). Valid lines are stored in ' +
          'chunks as they are read; invalid ones are reported by line number and do not stop the import. ' +
          'With INGEST_AUTH=token, an import without a valid X-Device-Token is a 401 before its body is read, ' +
          'and lines of devices other than the one whose token is sent are refused. There is no limit on the ' +
          "import's total time; a body that sends nothing for 30 s is stopped with a 408 whose detail says how " +
          'many readings were stored and from which line to send again. With an `Idempotency-Key`, a retry of a ' +
          'finished import (the same body, byte for byte) stores nothing and answers its report again; a retry of ' +
          'an import that stopped or still runs is a 409 whose detail says what it stored.',
        security: OPTIONAL_DEVICE_TOKEN,
        headers: IdempotentWriteHeaders,
        consumes: Object.keys(formatByType),
        body: Type.Unsafe<Readable>({
          type: 'string',
          description: 'CSV or NDJSON text',
          examples: ['device_id,x,y,z,timestamp\n1,100,200,300,2026-11-27T08:00:00Z\n'],
        }),
        response: {
          200: { ...ImportReport, headers: ReplayedHeader },
          ...errorResponses(401, 408, 409, 415, 422, 503),
        },
      },
    },
    async (request, reply) => {
      const type = request.headers['content-type'] ?? '';
      const format = formatByType[type.split(';')[0]?.trim().toLowerCase() ?? ''];
      if (!format || !(request.body instanceof Readable)) {
        throw unsupportedMediaType(type, Object.keys(formatByType).join(' or '));
      }
      // No limit on an import's total time, only on silence: the connection's idle timeout, answered
      // here with what was stored rather than by closing the socket. The lines are read through a
      // stream of their own, so that ending them leaves the socket open for the answer.
      const body = request.body;
      const lines = new PassThrough();
      body.pipe(lines);
      body.on('error', (error) => lines.destroy(error));
      // (Requests made with inject() have no socket, and no setTimeout.)
      request.raw.setTimeout?.(IDLE_TIMEOUT_MS, () => {
        body.unpipe(lines);
        lines.destroy(Object.assign(new Error('no bytes within the idle timeout'), { code: IDLE }));
      });
      try {
        const token = deviceToken(request);
        const name = idempotencyKeyOf(request, token, ingestAuth);
        if (!name) return await importReadings(ingest, lines, format, token);
        // The fingerprint of an import: its format and the digest of its bytes, read as they stream.
        const digest = createHash('sha256');
        body.on('data', (bytes: Buffer) => digest.update(bytes));
        const fingerprint = () =>
          fingerprintOf('POST', '/data/import', name.scope, { format, body: digest.digest('hex') });
        const { body: report, replayed } = await ingest.keys.once(
          name,
          // A retry of a recorded key: its body is read to the end (and stored nowhere) to compare it.
          async () => {
            for await (const _ of lines);
            return fingerprint();
          },
          () => importReadings(ingest, lines, format, token, { name, fingerprint }),
          { whileRunning: 'refuse' },
        );
        if (replayed) reply.header(IDEMPOTENT_REPLAYED, 'true');
        return report;
      } catch (error) {
        if (error instanceof DomainError && error.code === 'REQUEST_TIMEOUT') {
          request.log.info({ reason: error.message }, 'import cut short');
          reply.header('connection', 'close');
        }
        throw error;
      }
    },
  );

  app.get(
    '/data/export',
    {
      schema: {
        operationId: 'exportReadings',
        tags: ['data'],
        summary: 'Export the matching readings as CSV or NDJSON, streamed',
        description: 'The same filters as GET /data/; CSV has the columns the import takes.',
        querystring: Type.Object({
          ...ReadingFilters,
          format: Type.Unsafe<ExportFormat>({ type: 'string', enum: ['csv', 'ndjson'], default: 'csv' }),
        }),
        produces: ['text/csv', 'application/x-ndjson'],
        response: {
          200: Type.Unsafe<Readable>({ type: 'string', description: 'CSV or NDJSON' }),
          ...errorResponses(422, 503),
        },
      },
    },
    async (request, reply) => {
      const { format, device_id } = request.query;
      const range = parseDateRange(request.query);
      const csv = format === 'csv';
      return reply
        .type(csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="readings.${csv ? 'csv' : 'ndjson'}"`)
        .send(exportReadings(reads, { deviceId: device_id, ...range }, format));
    },
  );
};
