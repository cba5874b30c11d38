import { type CompiledQuery, type Kysely, type RawBuilder, sql } from 'kysely';
import {
  boundRows,
  type Engine,
  greater,
  ieeeAdd,
  ieeeSum,
  lesser,
  rowsAsTable,
  sizeClasses,
  type TableRow,
} from '../db/dialect.js';
import { type Late, type Prepared, parsedOnce, prepare } from '../db/prepared.js';
import { type Database, type EpochMs, MINUTE_MS } from '../db/tables.js';

/** A reading ready to store: the columns of `data` but its id. */
export interface ReadingRow {
  device_id: number;
  x: number;
  y: number;
  z: number;
  created_at: EpochMs;
}

/** SQLite's largest insert statement: 1,024 readings, 6,144 bound values with their ids (SQLite allows 32,766). */
const LARGEST_CLASS = 1024;
const VALUES = ['x', 'y', 'z'] as const;

/** What one insert stored: the readings' ids in input order, and the rollup rows it merged. */
export interface StoredReadings {
  ids: number[];
  minuteRollups: number;
}

/** How a statement of rows reads its late values. */
type LateRows = <T>(read: (input: readonly TableRow[]) => T) => Late<readonly TableRow[], T>;

/** Stores readings with their minute rollups, through statements compiled once (see `readingStore`). */
export interface ReadingStore {
  /**
   * Stores many readings atomically and answers their ids in input order. `ids` (one per row, for a
   * move from another database) stores the rows under those ids. `alongside` gives statements to run
   * in the same transaction once the readings' ids are known (the idempotency keys of their requests).
   */
  insert(
    rows: readonly ReadingRow[],
    ids?: readonly number[],
    alongside?: Alongside,
  ): Promise<StoredReadings>;
}

/** Statements committed with the readings, or rolled back with them; given the readings' ids in input order. */
export type Alongside = (ids: number[]) => CompiledQuery[];

/** What one insert binds: the readings as rows of READING_COLUMNS (id first when given), and their rollups. */
interface InsertInput {
  readings: TableRow[];
  rollups: MinuteRollup[];
}

/**
 * Stores readings and merges them into their per-minute rollups (`reading_minutes`) in the same
 * transaction, late readings included. PostgreSQL: one statement with one parameter per column (it
 * unnests arrays and chains the rollups to the insert), the same SQL for any number of rows. SQLite:
 * the readings as bound values, through one statement per power-of-two size class (a 1,000-reading
 * batch runs 6), which took a quarter of the time of writing them as JSON for json_each; their
 * rollups alike (the sparse ingest's lead: 0.56 of the time of json_each). Every statement is compiled once here (db/prepared.ts), and every
 * group commit, batch and import chunk only binds its values. The readings are grouped by
 * minute here: grouping them again in SQL would cost as much as storing them.
 */
export function readingStore(db: Kysely<Database>, engine: Engine): ReadingStore {
  const generated = insertStatements(db, engine, false);
  // The statements that store rows under given ids serve only moves from another database (imports of
  // the original, transfer): compiled at the first such move, not held by every server.
  let given: ReturnType<typeof insertStatements> | undefined;
  const givenStatements = () => {
    given ??= insertStatements(db, engine, true);
    return given;
  };
  const transactionStatements = {
    begin: prepare(db, () => sql`begin`),
    commit: prepare(db, () => sql`commit`),
    rollback: prepare(db, () => sql`rollback`),
  };
  return {
    async insert(rows, ids, alongside) {
      if (rows.length === 0) return { ids: [], minuteRollups: 0 };
      const rollups = rollUpByMinute(rows);
      const input: InsertInput = {
        readings: rows.map((r, i) =>
          ids
            ? [ids[i] as number, r.device_id, r.x, r.y, r.z, r.created_at]
            : [r.device_id, r.x, r.y, r.z, r.created_at],
        ),
        rollups,
      };
      const stored = (inserted: number[]) => ({ ids: inserted, minuteRollups: rollups.length });
      const statement = ids ? givenStatements() : generated;
      const { begin, commit, rollback } = transactionStatements;
      // PostgreSQL: ids grow in insertion order within one statement, so sorted ids line up with the input rows.
      const idsOf = (result: { rows: { id: number }[] }) =>
        ids ? [...ids] : result.rows.map((row) => Number(row.id)).sort((a, b) => a - b);
      // On PostgreSQL one statement is its own transaction; with statements alongside, they share one.
      if (statement.engine === 'postgres' && !alongside)
        return stored(idsOf(await db.executeQuery<{ id: number }>(statement.insert.bind(input))));
      return db.connection().execute(async (connection) => {
        await connection.executeQuery(begin.bind());
        try {
          let inserted: number[];
          if (statement.engine === 'postgres') {
            inserted = idsOf(await connection.executeQuery<{ id: number }>(statement.insert.bind(input)));
          } else {
            let last = 0;
            for (const chunk of sizeClasses(input.readings, LARGEST_CLASS)) {
              const insert = statement.insert.get(chunk.length) as Prepared<readonly TableRow[]>;
              last = Number((await connection.executeQuery(insert.bind(chunk))).insertId);
            }
            for (const chunk of sizeClasses(input.rollups, LARGEST_CLASS)) {
              const upsert = statement.upsert.get(chunk.length) as Prepared<readonly TableRow[]>;
              const merged = await connection.executeQuery<{ folded: number }>(upsert.bind(chunk));
              if (merged.rows.every((row) => row.folded === 0)) continue;
              const reopen = statement.reopen.get(chunk.length) as Prepared<readonly TableRow[]>;
              await connection.executeQuery(reopen.bind(chunk));
            }
            // SQLite has one writer, so one statement's autoincrement ids are consecutive and end at the
            // last insert id (the statements run in order, in one transaction); reading them that way is
            // cheaper than RETURNING.
            inserted = ids ? [...ids] : rows.map((_, i) => last - rows.length + 1 + i);
          }
          for (const query of alongside?.(inserted) ?? []) await connection.executeQuery(query);
          await connection.executeQuery(commit.bind());
          return stored(inserted);
        } catch (error) {
          // SQLite ends the transaction by itself on some errors (a full disk): the rollback then fails,
          // and that failure must not hide the cause.
          await connection.executeQuery(rollback.bind()).catch((failure: unknown) => {
            if (!String((failure as Error).message).includes('no transaction is active')) throw failure;
          });
          throw error;
        }
      });
    },
  };
}

/** The statements of one insert, with the ids generated or given. */
function insertStatements(db: Kysely<Database>, engine: Engine, givenIds: boolean) {
  const idColumn = givenIds ? sql`id, ` : sql``;
  const columns = [...(givenIds ? ([['id', 'int8']] as const) : []), ...READING_COLUMNS];
  const readings = (late: <T>(read: (input: InsertInput) => T) => Late<InsertInput, T>) =>
    rowsAsTable(
      engine,
      columns,
      late((input) => input.readings),
    );
  const minutes = (late: <T>(read: (input: InsertInput) => T) => Late<InsertInput, T>) =>
    upsertMinuteRollups(
      engine,
      rowsAsTable(
        engine,
        ROLLUP_COLUMNS,
        late((input) => input.rollups),
      ),
    );
  if (engine === 'postgres') {
    // The same text for any number of rows: parsed and planned once per connection.
    const insert = parsedOnce(
      prepare<InsertInput, Database>(
        db,
        (late) => sql`
          with inserted as (
            insert into data (${idColumn}device_id, x, y, z, created_at)
            select * from ${readings(late)} as incoming
            returning id
          ), rolled_up as (${minutes(late)})
          select id from inserted`,
      ),
    );
    return { engine, insert } as const;
  }
  // SQLite: the readings and their rollups as bound values, one statement per size class (dialect.ts boundRows).
  const bySize = (build: (size: number, late: LateRows) => RawBuilder<unknown>) => {
    const statements = new Map<number, Prepared<readonly TableRow[]>>();
    for (let size = LARGEST_CLASS; size >= 1; size /= 2) {
      statements.set(
        size,
        prepare<readonly TableRow[], Database>(db, (late) => build(size, late)),
      );
    }
    return statements;
  };
  return {
    engine,
    insert: bySize(
      (size, late) => sql`
        insert into data (${idColumn}device_id, x, y, z, created_at)
        ${boundRows(columns.length, size, late)}`,
    ),
    upsert: bySize(
      (size, late) =>
        sql`${upsertMinuteRollups(engine, sql`(${boundRows(ROLLUP_COLUMNS.length, size, late)})`)}
        returning folded`,
    ),
    // Run only when the upsert returned a folded minute (a late reading; the live minute never is): as
    // a statement at every commit it cost more time than the page it saves (53.7 against 53.3 µs of
    // CPU a single-reading commit, 50.9 with the check). The rollups' first two columns are their keys.
    reopen: bySize(
      (size, late) => sql`
        update reading_minutes set folded = 0
        where folded <> 0 and (device_id, minute) in (${boundRows(2, size, late)})`,
    ),
  } as const;
}

/**
 * One row of `reading_minutes`: device_id, minute (its start, epoch ms), readings, then min, max
 * and sum of x, y and z. A tuple: bound as one row of values on SQLite, unnested from arrays on PostgreSQL.
 */
type MinuteRollup = [number, EpochMs, number, ...number[]];

/**
 * The readings summed up per device and UTC minute, in key order (so writers lock rows alike). Keyed
 * by number, device then minute, and each rollup made as one literal: with sparse devices every
 * reading starts a rollup of its own, and string keys and spread arrays cost 4 µs a reading (a 10,000
 * reading batch spent 40 ms here).
 */
function rollUpByMinute(rows: readonly ReadingRow[]): MinuteRollup[] {
  const byDevice = new Map<number, Map<number, MinuteRollup>>();
  const all: MinuteRollup[] = [];
  for (const row of rows) {
    const { device_id: deviceId, x, y, z, created_at: at } = row;
    const minute = at - (((at % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
    let minutes = byDevice.get(deviceId);
    if (!minutes) {
      minutes = new Map();
      byDevice.set(deviceId, minutes);
    }
    // The minute's number (a small integer for any date in the next millennia) hashes faster than its ms.
    const rollup = minutes.get(minute / MINUTE_MS);
    if (!rollup) {
      const created: MinuteRollup = [deviceId, minute, 1, x, x, x, y, y, y, z, z, z];
      minutes.set(minute / MINUTE_MS, created);
      all.push(created);
      continue;
    }
    rollup[2]++;
    merge(rollup, 3, x);
    merge(rollup, 6, y);
    merge(rollup, 9, z);
  }
  return all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** One value into a rollup's min, max and sum at `at`. */
function merge(rollup: MinuteRollup, at: number, value: number): void {
  if (value < (rollup[at] as number)) rollup[at] = value;
  if (value > (rollup[at + 1] as number)) rollup[at + 1] = value;
  rollup[at + 2] = (rollup[at + 2] as number) + value;
}

// On SQLite a rollup sum beyond the double range binds as null, as it did when rollups travelled as
// JSON (the series reads it as unknown, as it does Infinity); PostgreSQL's arrays carry Infinity and NaN.
const READING_COLUMNS = [
  ['device_id', 'int'],
  ['x', 'float8'],
  ['y', 'float8'],
  ['z', 'float8'],
  ['created_at', 'int8'],
] as const;

const ROLLUP_COLUMNS = [
  ['device_id', 'int'],
  ['minute', 'int8'],
  ['readings', 'int'],
  ...VALUES.flatMap((v) => [
    [`${v}_min`, 'float8'] as const,
    [`${v}_max`, 'float8'] as const,
    [`${v}_sum`, 'float8'] as const,
  ]),
] as const;

/**
 * The rollups of readings already stored (any relation with device_id, x, y, z and created_at),
 * grouped in SQL: how migration 0003 fills `reading_minutes` from the existing readings.
 */
export function minuteRollupsOf(engine: Engine, readings: RawBuilder<unknown>): RawBuilder<unknown> {
  const time = sql.ref<number>('r.created_at');
  return sql`(select r.device_id, ${time} - ((${time} % 60000) + 60000) % 60000, count(*), ${sql.join(
    VALUES.flatMap((v) => {
      const value = sql.ref<number>(`r.${v}`);
      return [sql`min(${value})`, sql`max(${value})`, ieeeSum(engine, value)];
    }),
  )}
    from ${readings} as r
    group by 1, 2
    order by 1, 2)`;
}

/**
 * Merges rollups (a relation with the columns of `reading_minutes`) into the rows already there. Each
 * minute it touches must end up unfolded: all the hour, day and month rollups cost at ingest
 * (statistics/rollup-folder.ts does the rest). A new row is by the column's default. A merged one is,
 * on PostgreSQL, by `folded = 0` here: an update that leaves the value as it was still allows a HOT
 * update there. On SQLite, a `folded` in the SET deletes and re-inserts the row's entry in the partial
 * index `reading_minutes_unfolded` (where folded = 0) at every merge, already unfolded or not: one more
 * page in the write-ahead log at each group commit of the live ingest, a sixth of its pages (its
 * current minute is never folded). There the writer re-opens the minutes that were folded with
 * an update of its own in the same transaction (readingStore's `reopen`), when the upsert returns one.
 */
export function upsertMinuteRollups(engine: Engine, rollups: RawBuilder<unknown>): RawBuilder<unknown> {
  const kept = (column: string) => sql.ref<number>(`reading_minutes.${column}`);
  const incoming = (column: string) => sql.ref<number>(`excluded.${column}`);
  return sql`
    insert into reading_minutes (device_id, minute, readings, ${sql.join(
      VALUES.flatMap((v) => [sql.ref(`${v}_min`), sql.ref(`${v}_max`), sql.ref(`${v}_sum`)]),
    )})
    select * from ${rollups} as incoming
    where true
    on conflict (device_id, minute) do update set
      readings = reading_minutes.readings + excluded.readings, ${engine === 'postgres' ? sql`folded = 0, ` : sql``}${sql.join(
        VALUES.flatMap((v) => [
          sql`${sql.ref(`${v}_min`)} = ${lesser(engine, kept(`${v}_min`), incoming(`${v}_min`))}`,
          sql`${sql.ref(`${v}_max`)} = ${greater(engine, kept(`${v}_max`), incoming(`${v}_max`))}`,
          sql`${sql.ref(`${v}_sum`)} = ${ieeeAdd(engine, kept(`${v}_sum`), incoming(`${v}_sum`))}`,
        ]),
      )}`;
}
