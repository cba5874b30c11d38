import pg from 'pg';
import { PARSED_ONCE } from './prepared.js';

/**
 * How long the PostgreSQL driver waits for any answer before it gives up (503): a database that stops
 * answering mid-query fails the request before the 30 s request timeout.
 */
export const POSTGRES_QUERY_TIMEOUT_MS = 25_000;

export function openPostgresPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 2000,
    query_timeout: POSTGRES_QUERY_TIMEOUT_MS,
    types: {
      // int8 (ids, counts, epoch milliseconds) as numbers: every value we store fits in 2^53.
      getTypeParser: (oid: number, format?: 'text' | 'binary') =>
        oid === 20 ? Number : pg.types.getTypeParser(oid, format),
    } as pg.CustomTypesConfig,
  });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  // Nor a client in use (between two statements of a transaction) when its server goes away: pg
  // emits the error on the client, where nobody listens while the pool has lent it out. The query
  // running or the next one fails with it, and that request (or its fallback) deals with it.
  const names = new Map<string, string>();
  pool.on('connect', (client) => {
    client.on('error', () => {});
    nameParsedOnce(client, names);
    endingAfterReadTimeout(client);
  });
  pool.on('release', (error, client) => {
    // Given back inside a transaction (a path that began one and neither committed nor rolled back):
    // whatever runs on it next would never commit. An ended client leaves the pool.
    if (!error && client.getTransactionStatus() !== 'I') void client.end();
  });
  return pool;
}

/** pg's error when `query_timeout` passes without an answer. */
const READ_TIMEOUT = 'Query read timeout';

/**
 * Ends a client whose query timed out, so that the pool drops it rather than lending it again. The
 * statement was sent (or is queued behind one that was) and runs whenever PostgreSQL answers again:
 * a `begin` sent to a hung server (Kysely's transactions send theirs before their try, so no rollback
 * follows its failure) left its connection inside a transaction once the server went on, and the group
 * commit that borrowed it next was answered 200 and never committed.
 */
function endingAfterReadTimeout(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const result = query(...args);
    if (result instanceof Promise) {
      result.catch((error: unknown) => {
        if ((error as Error | undefined)?.message === READ_TIMEOUT) void client.end();
      });
    }
    return result;
  }) as typeof client.query;
}

/** Most statement texts a pool names; past them, a marked statement goes unnamed (parsed each run). */
const MAX_NAMED_STATEMENTS = 32;

/**
 * Sends the statements marked `parsedOnce` (prepared.ts) as named statements, one name per text across
 * the pool: PostgreSQL parses and plans each once per connection, and pg then sends only its values.
 * Kysely passes a query's text and values, never a name, hence the wrapper around the client.
 */
function nameParsedOnce(client: pg.PoolClient, names: Map<string, string>): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((text: unknown, ...rest: unknown[]) => {
    if (typeof text === 'string' && rest.length === 1 && text.startsWith(PARSED_ONCE)) {
      let name = names.get(text);
      if (!name && names.size < MAX_NAMED_STATEMENTS) {
        name = `parsed_once_${names.size}`;
        names.set(text, name);
      }
      if (name) return query({ name, text, values: rest[0] });
    }
    return query(text, ...rest);
  }) as typeof client.query;
}
