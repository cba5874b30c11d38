import createClient from 'openapi-fetch';
import type { components, operations, paths } from './api-types';
import { query } from './dom';
import { endSession, keepToken, startSession, token } from './session';

/**
 * The dashboard's only way to the API: an openapi-fetch client typed by api-types.ts, which
 * `npm run generate:client` writes from /openapi.json. A call or a field that no longer matches the
 * API fails the type check, not the dashboard.
 */

type Schemas = components['schemas'];
type Query<Operation extends keyof operations> = NonNullable<operations[Operation]['parameters']['query']>;
type JsonAnswer<Operation extends keyof operations> = operations[Operation]['responses'] extends {
  200: { content: { 'application/json': infer Body } };
}
  ? Body
  : never;

export type User = Schemas['UserRead'];
export type Device = Schemas['Device'];
export type CreatedDevice = Schemas['CreatedDevice'];
export type Statistics = Schemas['Statistics'];
export type SeriesBucket = JsonAnswer<'getSeries'>[number];
export type ExportQuery = Query<'exportReadings'>;

export type Axis = 'x' | 'y' | 'z';
export const AXES: readonly Axis[] = ['x', 'y', 'z'];
export type AxisStatistics = Record<Axis, Statistics>;
export type BucketValues = Schemas['SeriesValues'];

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export const api = createClient<paths>();

api.use({
  onRequest({ request }) {
    const bearer = token();
    if (bearer) request.headers.set('authorization', `Bearer ${bearer}`);
  },
  // A 401 on a signed-in call ends the session.
  onResponse({ request, response }) {
    if (response.status === 401 && request.headers.has('authorization')) {
      endSession('Your session has expired or was ended: please sign in again.');
      location.hash = '#/login';
    }
  },
  onError({ error }) {
    if ((error as Error).name === 'AbortError') return error as Error;
    return new ApiError('Cannot reach the server: check that it is running and try again.', 0);
  },
});

const KNOWN_DETAILS: Record<string, string> = {
  LOGIN_BAD_CREDENTIALS: 'Wrong e-mail or password, or the account is inactive.',
  REGISTER_USER_ALREADY_EXISTS: 'An account with this e-mail already exists: sign in instead.',
  REGISTER_INVALID_PASSWORD: 'That password is not accepted.',
};

type ErrorBody = Schemas['ErrorResponse'] | Schemas['ValidationErrorResponse'];

/** The API's `{detail}` (a string, a code object or FastAPI's validation list) as one readable sentence. */
function describe(status: number, body: Partial<ErrorBody> | string | undefined): string {
  const detail = typeof body === 'object' ? body.detail : undefined;
  if (typeof detail === 'string') return KNOWN_DETAILS[detail] ?? detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        const field = item.loc.filter((part) => part !== 'body' && part !== 'query').join('.');
        return field ? `${field}: ${item.msg}` : item.msg;
      })
      .join('; ');
  }
  if (detail) return detail.reason || (KNOWN_DETAILS[detail.code] ?? detail.code);
  if (status === 429) return 'Too many attempts: wait a while and try again.';
  return `The server answered ${status}.`;
}

interface Answer<T> {
  data?: T;
  error?: Partial<ErrorBody> | string;
  response: Response;
}

/** The data of an answer, or an ApiError that says what went wrong in words. */
export async function answer<T>(call: Answer<T> | Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ApiError(describe(response.status, error), response.status);
  return data as T;
}

/** Every page of the device list, following the cursor of `Link: <...>; rel="next"` (at most `maxPages`). */
export async function allDevices(
  filters: Query<'listDevices'>,
  signal?: AbortSignal,
  maxPages = 20,
): Promise<Device[]> {
  const devices: Device[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const result = await api.GET('/device/', { params: { query: { ...filters, cursor } }, signal });
    devices.push(...(await answer(result)));
    const next = /<([^>]+)>;\s*rel="?next"?/.exec(result.response.headers.get('link') ?? '')?.[1];
    cursor = next ? (new URL(next, location.origin).searchParams.get('cursor') ?? undefined) : undefined;
    if (!cursor) break;
  }
  return devices;
}

/** `attr=all` answers one set of statistics per axis; any other shape is a mismatch with the API. */
export function byAxis(statistics: JsonAnswer<'getStatistics'>): AxisStatistics {
  if (!Array.isArray(statistics) && !('count' in statistics)) {
    const { x, y, z } = statistics;
    if (x && y && z) return { x, y, z };
  }
  throw new ApiError('The server answered statistics of another shape than asked for.', 0);
}

/** The values of one axis in a bucket of a series asked for several (`attr=x,y,z`). */
export function bucketValues(bucket: SeriesBucket, axis: Axis): BucketValues {
  if ('min' in bucket) throw new ApiError('The server answered a series of one value, not three.', 0);
  return bucket[axis] ?? { min: null, max: null, mean: null };
}

/** The link that downloads the selected readings (a plain link, so the browser saves the file). */
export function exportUrl(filters: ExportQuery): string {
  return `/data/export${query({ ...filters })}`;
}

export async function signIn(email: string, password: string): Promise<User> {
  endSession();
  const { access_token } = await answer(
    api.POST('/auth/jwt/login', {
      body: { username: email, password },
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    }),
  );
  keepToken(access_token);
  const user = await answer(api.GET('/users/me'));
  startSession(access_token, user);
  return user;
}

export async function signOut(): Promise<void> {
  try {
    await answer(api.POST('/auth/jwt/logout'));
  } catch {
    // The token may already be gone; the session ends here either way.
  }
  endSession('You are signed out.');
}
