import { type TSchema, Type } from '@sinclair/typebox';

/** `{"detail": "..."}` or `{"detail": {"code": ..., "reason": ...}}`, FastAPI's error envelope. */
export const ErrorResponse = Type.Object(
  {
    detail: Type.Union([Type.String(), Type.Object({ code: Type.String(), reason: Type.String() })]),
  },
  { $id: 'ErrorResponse', description: 'An error, as FastAPI shapes it' },
);

/** A number, or null where there is none (nothing selected, an overflow): the one meaning of Nullable. */
export const Nullable = (description?: string) =>
  Type.Union([Type.Number(), Type.Null()], description === undefined ? {} : { description });

export const ValidationErrorResponse = Type.Object(
  {
    detail: Type.Array(
      Type.Object({
        loc: Type.Array(Type.Union([Type.String(), Type.Integer()])),
        msg: Type.String(),
        type: Type.String(),
        ctx: Type.Optional(Type.Object({}, { additionalProperties: true })),
      }),
    ),
  },
  { $id: 'ValidationErrorResponse', description: 'Invalid input: each item names the field and the problem' },
);

/** What each error status means, as the OpenAPI document tells it. */
const ERROR_DESCRIPTIONS = {
  400: 'Refused: `detail` is a FastAPI Users code (or `{code, reason}` for a password rule)',
  401: 'No valid token: missing where one is needed, or invalid, expired, logged out, or of an inactive user',
  403: 'The token is valid but its user may not do this, or a browser sent the request from a site CORS_ORIGINS does not allow',
  404: 'Not found',
  405: 'Not allowed',
  408: 'The body stopped coming, or took longer than BODY_TIMEOUT_MS to arrive (an import: `detail` says what it stored)',
  409: 'The Idempotency-Key was used with another request, or names an import that stopped (`detail` says what it stored)',
  413: 'The body is larger than the server takes',
  415: 'A Content-Type this route does not take',
  422: 'Invalid input: each item names the field (`loc`) and the problem',
  429: 'Too many attempts: `Retry-After` says when to try again',
  503: 'The database is unavailable: retry after `Retry-After` seconds',
} as const;

export type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

const RETRY_AFTER = {
  'retry-after': Type.Integer({ description: 'Seconds to wait before trying again' }),
};

/** The error statuses a route can answer, each documented with the shared envelope. */
export function errorResponses(...statuses: ErrorStatus[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) {
    const description = ERROR_DESCRIPTIONS[status];
    const schema = Type.Ref(status === 422 ? ValidationErrorResponse : ErrorResponse, { description });
    responses[status] = status === 429 || status === 503 ? { ...schema, headers: RETRY_AFTER } : schema;
  }
  return responses;
}

/**
 * The 422 of a statistics or series query: invalid input (FastAPI's list of issues), or a query the
 * server could not compute within STATISTICS_THREAD_MEMORY_MB (`{"detail": "..."}`, a message that
 * says what to change).
 */
export const invalidOrTooLarge: TSchema = Type.Union(
  [Type.Ref(ValidationErrorResponse), Type.Ref(ErrorResponse)],
  {
    description:
      'Invalid input (each item names the field and the problem), or a query that needed more memory ' +
      'than STATISTICS_THREAD_MEMORY_MB allows (`detail` says what to narrow)',
  },
);

/** The largest id: PostgreSQL's integer range, so a huge id is a 422, not a 500. */
export const MAX_ID = 2_147_483_647;

export const Id = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_ID, description });

export const NoContent = Type.Null({ description: 'No content' });
