import { type TSchema, Type } from '@sinclair/typebox';

/** `{"detail": "..."}` or `{"detail": {"code": ..., "reason": ...}}`, FastAPI's error envelope. */
export const ErrorResponse = Type.Object(
  {
    detail: Type.Union([Type.String(), Type.Object({ code: Type.String(), reason: Type.String() })]),
  },
  { $id: 'ErrorResponse', description: 'An error, as FastAPI shapes it' },
);

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

const errorRef = Type.Ref(ErrorResponse);

/** The error statuses a route can answer, each documented with the shared envelope. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) {
    responses[status] = status === 422 ? Type.Ref(ValidationErrorResponse) : errorRef;
  }
  return responses;
}

/** The largest id: PostgreSQL's integer range, so a huge id is a 422, not a 500. */
export const MAX_ID = 2_147_483_647;

export const Id = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_ID, description });

export const NoContent = Type.Null({ description: 'No content' });
