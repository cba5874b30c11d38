/** Domain errors, thrown anywhere and shaped into HTTP in one place (error-handler.ts). */
const statusByCode = {
  REGISTER_USER_ALREADY_EXISTS: 400,
  REGISTER_INVALID_PASSWORD: 400,
  LOGIN_BAD_CREDENTIALS: 400,
  UPDATE_USER_EMAIL_ALREADY_EXISTS: 400,
  UPDATE_USER_INVALID_PASSWORD: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  IDEMPOTENCY_KEY_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // As Prometheus answers a query past its memory bound (--query.max-samples): the same query fails again.
  STATISTICS_OUT_OF_MEMORY: 422,
  TOO_MANY_REQUESTS: 429,
  DATABASE_UNAVAILABLE: 503,
  INGEST_BUSY: 503,
  STATISTICS_BUSY: 503,
  STATISTICS_TIMEOUT: 503,
} as const;

export type ErrorCode = keyof typeof statusByCode;

/** What goes in `{"detail": ...}`: a message, or FastAPI Users' `{code, reason}` for password rules. */
export type ErrorDetail = string | { code: ErrorCode; reason: string };

export class DomainError extends Error {
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    readonly detail: ErrorDetail = code,
    /** Seconds after which the client may try again (429, 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(typeof detail === 'string' ? detail : `${detail.code}: ${detail.reason}`);
    this.statusCode = statusByCode[code];
  }
}

export const unauthorized = () => new DomainError('UNAUTHORIZED', 'Unauthorized');
export const forbidden = () => new DomainError('FORBIDDEN', 'Forbidden');
export const notFound = (what = 'Not Found') => new DomainError('NOT_FOUND', what);
export const unsupportedMediaType = (contentType: string | undefined, expected = 'application/json') =>
  new DomainError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Unsupported Media Type: ${contentType?.slice(0, 100) || 'none'}; send ${expected}`,
  );

/** One item of FastAPI's 422 body: where the bad value came from, what is wrong, a machine type. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

/** A 422 found by code rather than by the schema (a date that does not exist, a bad cursor). */
export class RequestValidationError extends Error {
  constructor(readonly issues: ValidationIssue[]) {
    super(issues.map((i) => `${i.loc.join('.')}: ${i.msg}`).join('; '));
  }
}

export function invalidQuery(field: string, msg: string, type: string): RequestValidationError {
  return new RequestValidationError([{ loc: ['query', field], msg, type }]);
}
