import type { FastifyBaseLogger } from 'fastify';
import type { OpenedDatabase } from './database.js';
import { maintain, type Retention } from './maintenance.js';

/** How often the server runs the maintenance: partitions are made a week ahead, so an hour is plenty. */
const INTERVAL_MS = 3_600_000;

export interface MaintenanceJob {
  /**
   * Stops the schedule. A run in progress is not waited for (on a database that does not answer it
   * would hold the shutdown): closing the database ends it, PostgreSQL's pool after its statement.
   */
  stop(): void;
}

/**
 * Runs the maintenance (db/maintenance.ts) now and then hourly, in every server process: the advisory
 * lock lets one of them work at a time. A failed run (a lock not had in time, the database away) is
 * logged and tried again at the next hour; readings meanwhile land in the partitions made ahead.
 */
export function scheduleMaintenance(
  database: OpenedDatabase,
  retention: Retention,
  log: FastifyBaseLogger,
): MaintenanceJob {
  // A run that outlasts the hour is not overlapped by the next.
  let busy = false;
  let stopped = false;
  const run = () => {
    if (stopped || busy) return;
    busy = true;
    void maintain(database.db, database.engine, retention)
      .then(
        (report) => {
          const changed =
            report.created.length + report.dropped.length + report.deletedReadings + report.deletedRollups >
            0;
          if (changed) log.info({ maintenance: report }, 'database maintenance done');
        },
        (error: unknown) => {
          if (!stopped) log.error({ err: error }, 'database maintenance failed; trying again in an hour');
        },
      )
      .finally(() => {
        busy = false;
      });
  };
  run();
  const timer = setInterval(run, INTERVAL_MS);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
