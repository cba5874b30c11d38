import SQLite from 'better-sqlite3';

/** A user row of the original (`user` table, FastAPI Users 10). */
export interface OriginalUser {
  id: number;
  email: string;
  hashed_password: string;
  is_active: number;
  is_superuser: number;
  is_verified: number;
}

export interface OriginalDevice {
  id: number;
  name: string | null;
  user_id: number | null;
}

/** A reading as the original stored it: `create_date` is naive server-local time; device_id may be null. */
export interface OriginalReading {
  id: number;
  device_id: number | null;
  x: unknown;
  y: unknown;
  z: unknown;
  create_date: unknown;
}

/** The tables and columns the original's migrations (Alembic head 267b6d4fc858) create. */
const EXPECTED: Record<string, string[]> = {
  user: ['id', 'email', 'hashed_password', 'is_active', 'is_superuser', 'is_verified'],
  device: ['id', 'name', 'user_id'],
  data: ['id', 'device_id', 'x', 'y', 'z', 'create_date'],
};

export class NotAnOriginalDatabase extends Error {}

/** The original service's SQLite database, opened read-only: it is never changed. */
export class OriginalSource {
  readonly #db: SQLite.Database;

  constructor(path: string) {
    try {
      this.#db = new SQLite(path, { readonly: true, fileMustExist: true });
    } catch (error) {
      throw new NotAnOriginalDatabase(`cannot open ${path}: ${(error as Error).message}`);
    }
    try {
      this.#checkSchema(path);
    } catch (error) {
      this.#db.close();
      throw error;
    }
  }

  #checkSchema(path: string): void {
    for (const [table, columns] of Object.entries(EXPECTED)) {
      let present: string[];
      try {
        present = (this.#db.pragma(`table_info("${table}")`) as { name: string }[]).map((c) => c.name);
      } catch (error) {
        throw new NotAnOriginalDatabase(`${path} is not a SQLite database: ${(error as Error).message}`);
      }
      const missing = columns.filter((column) => !present.includes(column));
      if (missing.length > 0) {
        throw new NotAnOriginalDatabase(
          `${path} is not a database of the original service: table "${table}" lacks ${missing.join(', ')}`,
        );
      }
    }
  }

  /** The Alembic revision the database is at, if it says. */
  revision(): string | undefined {
    try {
      const row = this.#db.prepare('select version_num from alembic_version').get() as
        | { version_num: string }
        | undefined;
      return row?.version_num;
    } catch {
      return undefined;
    }
  }

  users(): OriginalUser[] {
    return this.#db
      .prepare(
        'select id, email, hashed_password, is_active, is_superuser, is_verified from "user" order by id',
      )
      .all() as OriginalUser[];
  }

  devices(): OriginalDevice[] {
    return this.#db.prepare('select id, name, user_id from device order by id').all() as OriginalDevice[];
  }

  /** Each device's first `create_date` (the original does not keep when a device was made). */
  firstReadingTimes(): Map<number, string> {
    const rows = this.#db
      .prepare(
        'select device_id, min(create_date) as first from data where device_id is not null group by device_id',
      )
      .all() as { device_id: number; first: string }[];
    return new Map(rows.map((row) => [row.device_id, row.first]));
  }

  readingCount(): number {
    return (this.#db.prepare('select count(*) as n from data').get() as { n: number }).n;
  }

  /** The readings in id order, `size` at a time. */
  *readingChunks(size: number): Generator<OriginalReading[]> {
    const page = this.#db.prepare(
      'select id, device_id, x, y, z, create_date from data where id > ? order by id limit ?',
    );
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      const rows = page.all(after, size) as OriginalReading[];
      if (rows.length === 0) return;
      yield rows;
      after = (rows.at(-1) as OriginalReading).id;
    }
  }

  close(): void {
    this.#db.close();
  }
}
