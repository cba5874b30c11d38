import type { Compilable, CompiledQuery, Kysely, RawBuilder } from 'kysely';

/**
 * A value a prepared statement reads from its input each time it runs. Placed in a Kysely query
 * (`sql` template, `.values()`, `.where()`) it compiles into a bound parameter like any value; the
 * statement then binds `read(input)` in its place.
 */
export class Late<I, T = unknown> {
  constructor(readonly read: (input: I) => T) {}

  /** A value computed from this one at bind time (one column of the rows, a value as JSON). */
  map<U>(compute: (value: T) => U): Late<I, U> {
    return new Late((input) => compute(this.read(input)));
  }
}

/** A statement written with Kysely and compiled once; each run binds new values into the same SQL. */
export interface Prepared<I> {
  readonly sql: string;
  /** The statement with `input`'s values bound: `executeQuery` it on the handle or a connection. */
  bind(input: I): CompiledQuery;
}

/**
 * Builds and compiles a query once (plugins included) for a statement a hot path runs again and again:
 * Kysely stays where the SQL is written, and no request pays for building, transforming and
 * compiling the same query anew (a quarter of the ingest profile did). `build` receives `late`, which
 * marks the values to be read from each run's input; every other value is fixed at compile time.
 * Constant SQL (fixed literals, the rows-as-JSON shape of `rowsAsTable`) keeps one text for every
 * input, which also lets better-sqlite3 reuse its prepared statement (see database.ts).
 */
export function prepare<I = void, DB = unknown>(
  db: Kysely<DB>,
  build: (late: <T>(read: (input: I) => T) => Late<I, T>) => Compilable | RawBuilder<unknown>,
): Prepared<I> {
  // A raw `sql` query compiles through the handle's dialect and plugins; a query builder already has them.
  const compiled = (build((read) => new Late(read)) as RawBuilder<unknown>).compile(db);
  const lates = compiled.parameters.map((parameter) => (parameter instanceof Late ? parameter : undefined));
  // A statement without any late value is bound as it is (begin, commit).
  if (lates.every((late) => late === undefined)) return { sql: compiled.sql, bind: () => compiled };
  // A compiled query is only data (Kysely freezes it): the executor reads its sql and parameters. The
  // query id stays that of the compilation, which no plugin of ours keys anything on.
  return {
    sql: compiled.sql,
    bind: (input) => ({
      ...compiled,
      parameters: compiled.parameters.map((fixed, i) => {
        const late = lates[i];
        return late === undefined ? fixed : late.read(input);
      }),
    }),
  };
}
