/** The API client: the bearer token lives in sessionStorage; a 401 on a signed-in call ends the session. */

const TOKEN_KEY = 'statistics.token';
const USER_KEY = 'statistics.user';
const FLASH_KEY = 'statistics.flash';

export interface User {
  id: number;
  email: string;
  is_superuser: boolean;
}

export interface Device {
  id: number;
  name: string | null;
  user_id: number | null;
  created_at: string;
  readings: number;
  last_reading_at: string | null;
  ingest_token?: string;
}

export interface Statistics {
  count: number;
  min: number | null;
  max: number | null;
  sum: number | null;
  mean: number | null;
  median: number | null;
  variance: number | null;
  stddev: number | null;
  percentiles?: Record<string, number | null>;
}

export type Axis = 'x' | 'y' | 'z';
export const AXES: readonly Axis[] = ['x', 'y', 'z'];
export type AxisStatistics = Record<Axis, Statistics>;

export interface Bucket {
  start: string;
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
}

/** A bucket of `attr=x,y,z`: the count, then min, max and mean per axis. */
export type MultiBucket = { start: string; count: number } & Record<Axis, Omit<Bucket, 'start' | 'count'>>;

export interface Reading {
  id: number;
  device_id: number;
  x: number;
  y: number;
  z: number;
  created_at: string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function currentUser(): User | null {
  const raw = sessionStorage.getItem(USER_KEY);
  return raw ? (JSON.parse(raw) as User) : null;
}

export function startSession(accessToken: string, user: User): void {
  sessionStorage.setItem(TOKEN_KEY, accessToken);
  sessionStorage.setItem(USER_KEY, JSON.stringify(user));
}

export function endSession(flash?: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (flash) sessionStorage.setItem(FLASH_KEY, flash);
}

export function takeFlash(): string | null {
  const flash = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  return flash;
}

const KNOWN_DETAILS: Record<string, string> = {
  LOGIN_BAD_CREDENTIALS: 'Wrong e-mail or password, or the account is inactive.',
  REGISTER_USER_ALREADY_EXISTS: 'An account with this e-mail already exists: sign in instead.',
  REGISTER_INVALID_PASSWORD: 'That password is not accepted.',
};

/** The API's `{detail}` (a string, a code object or FastAPI's validation list) as one readable sentence. */
function describe(status: number, body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === 'string') return KNOWN_DETAILS[detail] ?? detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item: { loc?: unknown[]; msg?: string }) => {
        const field = (item.loc ?? []).filter((part) => part !== 'body' && part !== 'query').join('.');
        return field ? `${field}: ${item.msg}` : String(item.msg);
      })
      .join('; ');
  }
  if (detail && typeof detail === 'object') {
    const { code, reason } = detail as { code?: string; reason?: string };
    return reason ?? (code ? (KNOWN_DETAILS[code] ?? code) : `Request failed (${status})`);
  }
  if (status === 429) return 'Too many attempts: wait a while and try again.';
  return `The server answered ${status}.`;
}

export interface RequestOptions {
  method?: string;
  json?: unknown;
  form?: Record<string, string>;
  signal?: AbortSignal;
}

export async function request<T>(
  path: string,
  options: RequestOptions = {},
): Promise<{ data: T; headers: Headers }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const bearer = token();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = new URLSearchParams(options.form);
  }
  let response: Response;
  try {
    response = await fetch(path, { method: options.method ?? 'GET', headers, body, signal: options.signal });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError('Cannot reach the server: check that it is running and try again.', 0);
  }
  const text = await response.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && bearer) {
      endSession('Your session has expired or was ended: please sign in again.');
      location.hash = '#/login';
    }
    throw new ApiError(describe(response.status, data), response.status);
  }
  return { data: data as T, headers: response.headers };
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await request<T>(path, { signal })).data;
}

/** Every page of a paginated list, following `Link: <...>; rel="next"` (at most `maxPages`). */
export async function getAll<T>(path: string, maxPages = 20, signal?: AbortSignal): Promise<T[]> {
  const items: T[] = [];
  let next: string | null = path;
  for (let page = 0; next && page < maxPages; page++) {
    const { data, headers }: { data: T[]; headers: Headers } = await request<T[]>(next, { signal });
    items.push(...data);
    next = /<([^>]+)>;\s*rel="?next"?/.exec(headers.get('link') ?? '')?.[1] ?? null;
  }
  return items;
}

export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export async function signIn(email: string, password: string): Promise<User> {
  endSession();
  const { data } = await request<{ access_token: string }>('/auth/jwt/login', {
    method: 'POST',
    form: { username: email, password },
  });
  sessionStorage.setItem(TOKEN_KEY, data.access_token);
  const user = await get<User>('/users/me');
  startSession(data.access_token, user);
  return user;
}

export async function signOut(): Promise<void> {
  try {
    await request('/auth/jwt/logout', { method: 'POST' });
  } catch {
    // The token may already be gone; the session ends here either way.
  }
  endSession('You are signed out.');
}
