import { type Compilable, CompiledQuery, type Kysely, type RawBuilder } from 'kysely';

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
  const reads = compiled.parameters.map((parameter) =>
    parameter instanceof Late ? parameter.read : undefined,
  );
  // A statement without any late value is bound as it is (begin, commit).
  if (reads.every((read) => read === undefined)) return fixedStatement(compiled);
  const fixed = compiled.parameters.map((parameter) => (parameter instanceof Late ? undefined : parameter));
  // The executor reads only a compiled query's sql, parameters and id, so a statement keeps those and
  // lets go of the operation tree it was compiled from: the size classes' trees, with nodes for every
  // bound value, held 33 MB of the server's heap for as long as it ran. Its text is copied flat (Kysely
  // builds it by concatenation, and V8 keeps every piece of a concatenated string until it is flattened).
  return lateStatement(flatCopy(compiled.sql), fixed, reads);
}

/*
 * The statements are made here, not in prepare(): closures made in one scope share its variables, and
 * one that kept `compiled` would keep the tree.
 */

function fixedStatement<I>(compiled: CompiledQuery): Prepared<I> {
  return { sql: compiled.sql, bind: () => compiled };
}

/** A statement whose parameters are `fixed`, but where `reads` has a function: that one's value for the input. */
function lateStatement<I>(
  sql: string,
  fixed: readonly unknown[],
  reads: ReadonlyArray<((input: I) => unknown) | undefined>,
): Prepared<I> {
  const statement = CompiledQuery.raw(sql);
  return {
    sql,
    bind: (input) => ({
      ...statement,
      parameters: reads.map((read, i) => (read === undefined ? fixed[i] : read(input))),
    }),
  };
}

/** A string's characters in one flat string of their own. */
function flatCopy(text: string): string {
  return Buffer.from(text).toString();
}

/** The comment that starts a statement PostgreSQL keeps parsed on each connection (see `parsedOnce`). */
export const PARSED_ONCE = '/* parsed once */ ';

/**
 * The statement marked for PostgreSQL to parse and plan once per connection: the pool sends it as a
 * named statement (postgres-pool.ts), and each run is then only Bind and Execute. For the one statement a
 * group commit of single readings runs (reading-store.ts), parsing and planning it each time took
 * 0.82 ms of a 5-reading run, against 0.36 ms named (p50 of 2,000 runs inside one transaction).
 */
export function parsedOnce<I>(statement: Prepared<I>): Prepared<I> {
  const sql = `${PARSED_ONCE}${statement.sql}`;
  return { sql, bind: (input) => ({ ...statement.bind(input), sql }) };
}
