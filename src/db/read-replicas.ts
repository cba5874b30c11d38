import type { FastifyBaseLogger } from 'fastify';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Counter } from 'prom-client';
import { DomainError } from '../http/errors.js';
import type { Metrics } from '../metrics/metrics.js';
import type { OpenedDatabase } from './database.js';
import { openPostgresPool } from './postgres-pool.js';
import type { Database } from './tables.js';

/** DATABASE_READ_URL (the replicas) and MAX_REPLICA_LAG_MS. */
export interface ReadReplicaSettings {
  readonly urls: readonly string[];
  readonly maxLagMs: number;
}

/** How often each replica's replay position is read (and the primary's WAL position beside it). */
export const REPLICA_CHECK_INTERVAL_MS = 1000;

/**
 * Where the reads that may lag go (statistics, series, lists, exports): a replica of DATABASE_READ_URL
 * that is up and at most MAX_REPLICA_LAG_MS behind the primary, in turn, else the primary. A query
 * that fails on a replica runs again on the primary, so a replica going down loses no request.
 * Writes, and reads that must see a write just made (existence checks, authentication), take the
 * primary's handle directly and never come here.
 */
export interface Reads {
  read<T>(query: (db: Kysely<Database>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Every read on `db` itself (the command line tools, which have no replicas). */
export function primaryReads(db: Kysely<Database>): Reads {
  return { read: (query) => query(db), close: async () => {} };
}

interface Replica {
  readonly name: string;
  readonly db: Kysely<Database>;
  /** When the primary last had no WAL the replica has not replayed (-Infinity: not known yet). */
  caughtUpAt: number;
  /** Down since its last failure, until a check answers again. */
  up: boolean;
}

/** The primary's WAL position at a moment: a replica that has replayed it holds every commit made before. */
interface WalSample {
  at: number;
  lsn: bigint;
}

export function createReads(
  primary: OpenedDatabase,
  settings: ReadReplicaSettings,
  metrics: Metrics,
  log: FastifyBaseLogger,
): Reads {
  const reads = new Counter({
    name: 'statistics_database_reads_total',
    help: 'Reads that may lag (statistics, series, lists, exports), by where they ran: replica or primary',
    labelNames: ['target'],
    registers: [metrics.registry],
  });
  const fallbacks = new Counter({
    name: 'statistics_replica_fallbacks_total',
    help: 'Reads that failed on a replica and ran again on the primary',
    registers: [metrics.registry],
  });
  if (primary.engine !== 'postgres' || settings.urls.length === 0) {
    return {
      read: (query) => {
        reads.inc({ target: 'primary' });
        return query(primary.db);
      },
      close: async () => {},
    };
  }

  const replicas: Replica[] = settings.urls.map((url) => ({
    name: replicaName(url),
    db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: openPostgresPool(url) }) }),
    caughtUpAt: Number.NEGATIVE_INFINITY,
    up: false,
  }));
  let samples: WalSample[] = [];
  let next = 0;

  const check = async () => {
    let primaryLsn: bigint;
    try {
      const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(
        primary.db,
      );
      primaryLsn = parseLsn((rows[0] as { lsn: string }).lsn);
    } catch {
      return; // the primary's own troubles are reported by the requests that need it
    }
    const now = Date.now();
    samples.push({ at: now, lsn: primaryLsn });
    // A replica that has replayed only older positions is too far behind to answer anyway.
    samples = samples.filter((sample) => now - sample.at <= settings.maxLagMs + REPLICA_CHECK_INTERVAL_MS);
    await Promise.all(replicas.map((replica) => checkReplica(replica)));
  };

  const checkReplica = async (replica: Replica) => {
    try {
      const { rows } = await sql<{ standby: boolean; replayed: string | null }>`
        select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as replayed
      `.execute(replica.db);
      const row = rows[0];
      if (!row?.standby || row.replayed === null) {
        if (replica.up || replica.caughtUpAt === Number.NEGATIVE_INFINITY)
          log.warn({ replica: replica.name }, 'DATABASE_READ_URL: not a standby server (skipped)');
        replica.up = false;
        replica.caughtUpAt = 0;
        return;
      }
      const replayed = parseLsn(row.replayed);
      const caughtUp = samples.filter((sample) => sample.lsn <= replayed).at(-1);
      if (caughtUp) replica.caughtUpAt = Math.max(replica.caughtUpAt, caughtUp.at);
      if (!replica.up) log.info({ replica: replica.name }, 'read replica answering');
      replica.up = true;
    } catch (error) {
      markDown(replica, error);
    }
  };

  const markDown = (replica: Replica, error: unknown) => {
    if (replica.up) log.warn({ replica: replica.name, err: error }, 'read replica down: reads go elsewhere');
    replica.up = false;
  };

  // One check at a time: a replica that hangs delays the next check, and meanwhile ages past the limit.
  let checking: Promise<void> | undefined;
  const checkNow = () => {
    checking ??= check().finally(() => {
      checking = undefined;
    });
  };
  checkNow();
  const timer = setInterval(checkNow, REPLICA_CHECK_INTERVAL_MS);
  timer.unref();

  /** The next replica in turn that is up and within MAX_REPLICA_LAG_MS, if any. */
  const pick = (): Replica | undefined => {
    const now = Date.now();
    for (let i = 0; i < replicas.length; i++) {
      const replica = replicas[(next + i) % replicas.length] as Replica;
      if (replica.up && now - replica.caughtUpAt <= settings.maxLagMs) {
        next = (next + i + 1) % replicas.length;
        return replica;
      }
    }
    return undefined;
  };

  return {
    async read(query) {
      const replica = pick();
      if (replica) {
        try {
          const answer = await query(replica.db);
          reads.inc({ target: 'replica' });
          return answer;
        } catch (error) {
          // An answer the primary would give the same way is no reason to ask it.
          if (error instanceof DomainError || isStatementTimeout(error)) throw error;
          markDown(replica, error);
          fallbacks.inc();
        }
      }
      reads.inc({ target: 'primary' });
      return query(primary.db);
    },
    async close() {
      clearInterval(timer);
      await checking;
      await Promise.all(replicas.map((replica) => replica.db.destroy()));
    },
  };
}

/** PostgreSQL cancelled the statement at its statement_timeout. */
export function isStatementTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '57014';
}

/** A pg_lsn's text (`16/B374D848`) as one number, to compare positions. */
function parseLsn(text: string): bigint {
  const [high = '0', low = '0'] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** host:port/database, for logs: never the password. */
function replicaName(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || 5432}${parsed.pathname}`;
}
