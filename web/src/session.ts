import type { components } from './api-types';

type User = components['schemas']['UserRead'];

/** The session: the bearer token and its user live in sessionStorage, gone when the tab closes. */

const TOKEN_KEY = 'statistics.token';
const USER_KEY = 'statistics.user';
const FLASH_KEY = 'statistics.flash';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function currentUser(): User | null {
  const raw = sessionStorage.getItem(USER_KEY);
  return raw ? (JSON.parse(raw) as User) : null;
}

/** The token alone, while the user it belongs to is being fetched. */
export function keepToken(accessToken: string): void {
  sessionStorage.setItem(TOKEN_KEY, accessToken);
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
