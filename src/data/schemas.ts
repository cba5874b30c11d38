import { type Static, Type } from '@sinclair/typebox';
import { DateQuery } from '../http/dates.js';
import { documentedAs } from '../http/openapi.js';
import { PageQuery } from '../http/pagination.js';
import { Id } from '../http/schemas.js';

const Value = (axis: string) =>
  Type.Number({ description: `The ${axis} value: any finite double`, examples: [100] });

export const ReadingCreate = Type.Object(
  {
    device_id: Id('The device that took the reading'),
    x: Value('x'),
    y: Value('y'),
    z: Value('z'),
    timestamp: Type.Optional(
      Type.String({
        format: 'date-time',
        description:
          "When the device took the reading: ISO 8601 with a zone (Z or ±hh:mm). Without it, the server's receive time. " +
          'Late and out-of-order readings are fine; more than MAX_FUTURE_SKEW_SECONDS ahead is refused. ' +
          'The same name as in the answers; `created_at` is refused (422), never dropped for the server time.',
        examples: ['2026-11-27T08:00:00.123Z'],
      }),
    ),
  },
  { $id: 'ReadingCreate', description: 'A reading as a device sends it' },
);
export type ReadingCreate = Static<typeof ReadingCreate>;

// The same shape without the $id: it appears twice in IngestBody, and ajv refuses a twice-used id.
const ReadingItem = Type.Object(ReadingCreate.properties);

export const Reading = Type.Object(
  {
    id: Type.Integer({ examples: [1] }),
    device_id: Type.Integer({ examples: [1] }),
    x: Type.Number(),
    y: Type.Number(),
    z: Type.Number(),
    timestamp: Type.String({
      format: 'date-time',
      description:
        'When it was taken (the timestamp it was sent with), else when the server received it; UTC',
    }),
  },
  { $id: 'Reading', description: 'A stored reading' },
);
export type Reading = Static<typeof Reading>;

export const MAX_BATCH = 10_000;

const ingestBodyAnnotations = {
  description: `A reading, or a JSON array of up to ${MAX_BATCH} readings (all stored, or none)`,
  examples: [
    { device_id: 1, x: 100, y: 200, z: 300 },
    [
      { device_id: 1, x: 1, y: 2, z: 3, timestamp: '2026-11-27T08:00:00Z' },
      { device_id: 1, x: 4, y: 5, z: 6, timestamp: '2026-11-27T08:00:01Z' },
    ],
  ],
};

/**
 * One reading, or an array of up to 10,000 stored all or nothing. if/then/else (not oneOf) so a bad
 * item is reported against the shape it was meant to have, by index and field; the OpenAPI document
 * shows the same as oneOf, which client generators read.
 */
export const IngestBody = documentedAs(
  Type.Unsafe<ReadingCreate | ReadingCreate[]>({
    if: { type: 'array' },
    // biome-ignore lint/suspicious/noThenProperty: `then` is the JSON Schema keyword, not a promise.
    then: Type.Array(ReadingItem, { maxItems: MAX_BATCH }),
    else: ReadingItem,
    ...ingestBodyAnnotations,
  }),
  Type.Unsafe({
    oneOf: [Type.Ref(ReadingCreate), Type.Array(Type.Ref(ReadingCreate), { maxItems: MAX_BATCH })],
    ...ingestBodyAnnotations,
  }),
);

export const BatchResult = Type.Object(
  {
    stored: Type.Integer({ description: 'Readings stored' }),
    ids: Type.Optional(
      Type.Array(Type.Integer(), { description: 'Their ids in request order, for batches up to 1,000' }),
    ),
  },
  { $id: 'BatchResult', description: 'A stored batch' },
);
export type BatchResult = Static<typeof BatchResult>;

export const ImportReport = Type.Object(
  {
    stored: Type.Integer({ description: 'Readings stored' }),
    rejected: Type.Integer({ description: 'Lines refused' }),
    errors: Type.Array(Type.Object({ line: Type.Integer(), reason: Type.String() }), {
      description: 'The first 1,000 refused lines, with their line number (from 1) and why',
    }),
  },
  { $id: 'ImportReport', description: 'How many lines were stored and refused, and why' },
);
export type ImportReport = Static<typeof ImportReport>;

/** The filters that select readings, shared by the list and (with `attr`) the statistics. */
export const ReadingFilters = {
  device_id: Type.Optional(Id('Only this device')),
  start_date: Type.Optional(DateQuery('Readings at or after this time')),
  end_date: Type.Optional(DateQuery('Readings at or before this time')),
};

export const ReadingListQuery = Type.Object({ ...ReadingFilters, ...PageQuery });

/** The headers of a write that may be retried: `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header). */
export const IdempotentWriteHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x20-\\x7E]+$',
      description:
        'A key the client makes up for this write (a UUID), 1 to 255 printable ASCII characters. A retry with ' +
        'the same key and body stores nothing and answers the first answer again, with `Idempotent-Replayed: ' +
        'true`; the same key with another body is a 409. Kept at least 24 hours; failed writes are not kept.',
    }),
  ),
});

/** The header of an answer given again to a retry of the same Idempotency-Key. */
export const IDEMPOTENT_REPLAYED = 'idempotent-replayed';

export const ReplayedHeader = {
  [IDEMPOTENT_REPLAYED]: Type.Literal('true', {
    description: 'The first answer to this Idempotency-Key, given again',
  }),
};
