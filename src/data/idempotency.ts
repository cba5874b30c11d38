import { createHash } from 'node:crypto';
import { type CompiledQuery, type Kysely, sql } from 'kysely';
import { stringify } from 'safe-stable-stringify';
import { type Engine, isUniqueViolation, rowsAsTable, type TableRow } from '../db/dialect.js';
import { type Late, prepare } from '../db/prepared.js';
import type { Database, IdempotencyKeysTable } from '../db/tables.js';
import { DomainError } from '../http/errors.js';

/** How long a key is kept at least: a retry within it answers the first answer. */
export const KEPT_MS = 24 * 60 * 60_000;
/** Expired keys are deleted at most this often (by the first keyed write after it), not per request. */
const SWEEP_EVERY_MS = 10 * 60_000;

/** Who a key belongs to, and the key. */
export interface KeyName {
  /** The device's ingest-token digest (INGEST_AUTH=token), `open`, or `mqtt`. */
  scope: string;
  key: string;
}

/** A keyed write: the key, and the SHA-256 of the request it was first sent with. */
export interface KeyedWrite extends KeyName {
  fingerprint: string;
}

/**
 * How a write records its key: `checked` (an earlier record was looked up and there was none: a
 * concurrent one makes the transaction fail, and the retry answers that one's answer), or
 * `overwritten` (an MQTT first delivery, whose packet id may name an older, acknowledged message).
 */
export type KeyMode = 'checked' | 'overwritten';

/** What a write records with its readings. */
export interface KeyUse {
  write: KeyedWrite;
  mode: KeyMode;
}

/** A write's answer, or the first answer to the same key. */
export interface Outcome<T> {
  body: T;
  replayed: boolean;
}

/** What an import has stored so far, kept with its key until the import ends. */
export interface ImportProgress {
  stored: number;
  rejected: number;
  /** The last line read. */
  line: number;
}

/** SHA-256 over the method, the route, the scope and the body with its keys in a fixed order. */
export function fingerprintOf(method: string, route: string, scope: string, body: unknown): string {
  return createHash('sha256')
    .update(stringify([method, route, scope, body]) ?? '')
    .digest('hex');
}

interface Running {
  fingerprint: string | undefined;
  done: Promise<void>;
}

type Stored = Pick<IdempotencyKeysTable, 'fingerprint' | 'status' | 'answer' | 'progress'>;

const RECORD_COLUMNS = [
  ['scope', 'text'],
  ['key', 'text'],
  ['fingerprint', 'text'],
  ['status', 'int'],
  ['answer', 'text'],
  ['created_at', 'int8'],
] as const;

/**
 * Idempotency keys of writes. A key is recorded with its answer in the transaction that stores the
 * readings (`recording`, run by the reading store alongside them), so a crash keeps both or neither.
 * `once` answers the first answer to a key again, or runs the write: a write of the same key still
 * running in this process is waited for; one in another process makes the later transaction fail on
 * the key's primary key, and the answer is then read back. Failed writes record nothing: a 4xx or
 * 5xx is not remembered, and the client may fix the request and send it again with the same key.
 */
export class IdempotencyKeys {
  readonly #running = new Map<string, Running>();
  readonly #statements: ReturnType<typeof statementsOf>;
  #nextSweep = 0;

  constructor(
    private readonly db: Kysely<Database>,
    engine: Engine,
  ) {
    this.#statements = statementsOf(db, engine);
  }

  /**
   * Runs `work` once per key: a retry answers the stored answer (`replayed`), the same key with
   * another fingerprint is a 409. `fingerprint` may be computed only when needed (an import reads its
   * body to the end for it). `first` says what the first attempt does: `look-up` reads an earlier
   * record before writing; `insert` writes at once (a retry is rare: its key's conflict fails its
   * transaction, storing nothing, and the record is read then), which spares every first request a
   * read; `overwrite` writes over any earlier record (an MQTT first delivery). A write of the same
   * key still running in this process is waited for, or refused (a 409) `whileRunning: 'refuse'` (an
   * import, which may run for long). `otherFingerprint: 'overwrite'` runs the write when the record
   * holds another fingerprint, and writes over it (an MQTT redelivery whose packet id an older message
   * had), where the default is a 409.
   */
  async once<T>(
    name: KeyName,
    fingerprint: string | (() => Promise<string>),
    work: (mode: KeyMode) => Promise<T>,
    {
      first = 'look-up',
      whileRunning = 'wait',
      otherFingerprint = 'conflict',
    }: {
      first?: 'look-up' | 'insert' | 'overwrite';
      whileRunning?: 'wait' | 'refuse';
      otherFingerprint?: 'conflict' | 'overwrite';
    } = {},
  ): Promise<Outcome<T>> {
    await this.#sweepWhenDue();
    const id = `${name.scope}\n${name.key}`;
    const known = typeof fingerprint === 'string' ? fingerprint : undefined;
    let lookUp = first === 'look-up';
    let mode: KeyMode = first === 'overwrite' ? 'overwritten' : 'checked';
    let conflicts = 0;
    for (;;) {
      const running = this.#running.get(id);
      if (running) {
        const reused =
          known !== undefined && running.fingerprint !== undefined && running.fingerprint !== known;
        if (reused && otherFingerprint === 'conflict') throw keyReused();
        if (whileRunning === 'refuse')
          throw new DomainError(
            'IDEMPOTENCY_KEY_CONFLICT',
            'A request with this Idempotency-Key is still running; its answer will say what it stored',
          );
        await running.done;
        lookUp = true;
        mode = 'checked';
        continue;
      }
      let finished = () => {};
      const done = new Promise<void>((resolve) => {
        finished = resolve;
      });
      this.#running.set(id, { fingerprint: known, done });
      try {
        const stored = lookUp ? await this.#find(name) : undefined;
        if (stored) {
          const sent = known ?? (await (fingerprint as () => Promise<string>)());
          if (stored.fingerprint === sent || otherFingerprint === 'conflict')
            return { body: replay(stored, sent) as T, replayed: true };
          mode = 'overwritten';
        }
        return { body: await work(mode), replayed: false };
      } catch (error) {
        // The key was recorded meanwhile (by another process, or before when not looked up), and this
        // transaction stored nothing: that record's answer is the answer.
        if (mode === 'checked' && conflicts++ === 0 && isUniqueViolation(error)) {
          lookUp = true;
          continue;
        }
        throw error;
      } finally {
        this.#running.delete(id);
        finished();
      }
    }
  }

  /** The statements recording these keys and answers, run in the transaction of their readings. */
  recording(records: { use: KeyUse; answer: unknown }[]): CompiledQuery[] {
    const now = Date.now();
    const rows = (mode: KeyMode) =>
      records
        .filter(({ use }) => use.mode === mode)
        .map(({ use: { write }, answer }) => [
          write.scope,
          write.key,
          write.fingerprint,
          200,
          JSON.stringify(answer),
          now,
        ]);
    const checked = rows('checked');
    const overwritten = rows('overwritten');
    return [
      ...(checked.length > 0 ? [this.#statements.insert.bind(checked)] : []),
      ...(overwritten.length > 0 ? [this.#statements.overwrite.bind(overwritten)] : []),
    ];
  }

  /** The statement keeping an import's progress, in the transaction of each of its chunks. */
  importProgress(name: KeyName, progress: ImportProgress, first: boolean): CompiledQuery {
    const input = { ...name, progress: JSON.stringify(progress), now: Date.now() };
    return first ? this.#statements.importStarted.bind(input) : this.#statements.importProgressed.bind(input);
  }

  /** Records an import's answer once it ended (`started`: a chunk of it recorded the key already). */
  async importEnded(write: KeyedWrite, answer: unknown, started: boolean): Promise<void> {
    if (!started) {
      for (const query of this.recording([{ use: { write, mode: 'checked' }, answer }]))
        await this.db.executeQuery(query);
      return;
    }
    await this.db.executeQuery(
      this.#statements.importEnded.bind({ ...write, answer: JSON.stringify(answer) }),
    );
  }

  async #find(name: KeyName): Promise<Stored | undefined> {
    return (await this.db.executeQuery<Stored>(this.#statements.find.bind(name))).rows[0];
  }

  async #sweepWhenDue(): Promise<void> {
    const now = Date.now();
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + SWEEP_EVERY_MS;
    await this.db.executeQuery(this.#statements.sweep.bind(now - KEPT_MS));
  }
}

/** The stored answer, or why there is none to give. */
function replay(stored: Stored, fingerprint: string): unknown {
  if (stored.status === null || stored.answer === null) {
    const { stored: readings, rejected, line } = JSON.parse(stored.progress ?? '{}') as ImportProgress;
    throw new DomainError(
      'IDEMPOTENCY_KEY_CONFLICT',
      `An import with this Idempotency-Key is still running or stopped: it stored ${readings} readings from lines ` +
        `1 to ${line} (${rejected} lines rejected). Send the lines after line ${line} again, with a new key`,
    );
  }
  if (stored.fingerprint !== fingerprint) throw keyReused();
  return JSON.parse(stored.answer);
}

const keyReused = () =>
  new DomainError(
    'IDEMPOTENCY_KEY_CONFLICT',
    'This idempotency key (the Idempotency-Key header, or MQTT correlation data) was used with another ' +
      'request (another body or path); a new request needs a new key',
  );

function statementsOf(db: Kysely<Database>, engine: Engine) {
  type Rows = TableRow[];
  const record = (rows: Late<Rows, Rows>) => sql`
    insert into idempotency_keys (scope, key, fingerprint, status, answer, created_at)
    select * from ${rowsAsTable(engine, RECORD_COLUMNS, rows)} as incoming
    where true`;
  type Named<T = unknown> = KeyName & T;
  const byName = <I extends KeyName>(late: <T>(read: (input: I) => T) => Late<I, T>) =>
    sql`scope = ${late((input) => input.scope)} and key = ${late((input) => input.key)}`;
  return {
    find: prepare<KeyName, Database>(
      db,
      (late) => sql`select fingerprint, status, answer, progress from idempotency_keys where ${byName(late)}`,
    ),
    insert: prepare<Rows, Database>(db, (late) => record(late((rows) => rows))),
    overwrite: prepare<Rows, Database>(
      db,
      (late) => sql`${record(late((rows) => rows))}
        on conflict (scope, key) do update set fingerprint = excluded.fingerprint, status = excluded.status,
          answer = excluded.answer, progress = null, created_at = excluded.created_at`,
    ),
    importStarted: prepare<Named<{ progress: string; now: number }>, Database>(
      db,
      (late) => sql`insert into idempotency_keys (scope, key, progress, created_at)
        values (${late((input) => input.scope)}, ${late((input) => input.key)}, ${late((input) => input.progress)},
          ${late((input) => input.now)})`,
    ),
    importProgressed: prepare<Named<{ progress: string }>, Database>(
      db,
      (late) =>
        sql`update idempotency_keys set progress = ${late((input) => input.progress)} where ${byName(late)}`,
    ),
    importEnded: prepare<Named<{ fingerprint: string; answer: string }>, Database>(
      db,
      (late) => sql`update idempotency_keys
        set fingerprint = ${late((input) => input.fingerprint)}, status = 200,
          answer = ${late((input) => input.answer)}, progress = null
        where ${byName(late)}`,
    ),
    sweep: prepare<number, Database>(
      db,
      (late) => sql`delete from idempotency_keys where created_at < ${late((before) => before)}`,
    ),
  };
}
