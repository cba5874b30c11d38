const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'SQLITE_BUSY',
  'SQLITE_FULL',
  'SQLITE_READONLY',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
  '57P01', // admin_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);

/**
 * Whether an error says the database could not be reached or refused work for now (down, starting,
 * restarting, out of connections, a SQLite file locked or its disk full), as opposed to a query that
 * is wrong: the HTTP answer is then a 503 with Retry-After (http/error-handler.ts), and at start the
 * server waits and tries its migrations again (db/migrate.ts).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (
    typeof code === 'string' &&
    [...UNAVAILABLE_CODES].some((c) => code === c || code.startsWith(`${c}_`))
  ) {
    return true;
  }
  return (
    typeof message === 'string' &&
    /timeout exceeded when trying to connect|Connection terminated|Query read timeout/.test(message)
  );
}
