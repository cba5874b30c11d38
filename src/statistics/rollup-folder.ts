import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import { type FoldCursor, type FoldPlanner, foldRollups } from './rollup-fold.js';

/**
 * Readings one fold step reads at most (a step is one short write transaction). On SQLite the reading
 * and computing run in a heavy-query worker (`planner`), and only the writes on the event loop.
 */
export const FOLD_STEP_READINGS = 5_000;

/**
 * The folder's pace while ingest is busy (readings stored within BUSY_MS): after each step it waits
 * PACE times as long as the step took, so catching up takes at most 1 / (1 + PACE) of the time the
 * batches need (on PostgreSQL the folder plans on the event loop that also parses them). The hour,
 * day and month rollups lag further behind meanwhile (approximate answers read the backlog from the
 * minute rollups and readings, which makes them slower, not wrong), and catch up at full speed once
 * ingest pauses for a second.
 */
const BUSY_MS = 1000;
const PACE = 4;

/** PostgreSQL's lock_not_available: a fold step gave way to a write (rollup-fold.ts). */
const LOCK_NOT_AVAILABLE = '55P03';

/** The folder job: its stop() waits for the step in progress. */
export interface RollupFolder {
  stop(): Promise<void>;
}

/**
 * Every `intervalMs`, folds the changed hours into the hour, day and month rollups (rollup-fold.ts)
 * in steps until none is left, yielding to the event loop between steps, and pacing them while
 * ingest is busy (`lastStoredAt`: when this process last stored readings, performance.now()).
 * Several processes may run it on one PostgreSQL database: its advisory lock lets one fold at a time.
 */
export function startRollupFolder(
  db: Kysely<Database>,
  engine: Engine,
  intervalMs: number,
  log: FastifyBaseLogger,
  lastStoredAt: () => number,
  planner?: FoldPlanner,
): RollupFolder {
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        let after: FoldCursor | undefined;
        for (;;) {
          if (stopping.signal.aborted) return;
          const started = performance.now();
          const folded = await foldRollups(db, engine, FOLD_STEP_READINGS, undefined, planner, after);
          if (!folded || folded.hours === 0) break;
          after = folded.next;
          const ended = performance.now();
          if (ended - lastStoredAt() < BUSY_MS) {
            await sleep(PACE * (ended - started), undefined, { signal: stopping.signal }).catch(() => {});
          } else {
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      } catch (error) {
        if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
          log.info('folding gave way to a write holding a minute rollup; trying again later');
        } else {
          log.error({ err: error }, 'folding the hour, day and month rollups failed; trying again later');
        }
      }
      await sleep(intervalMs, undefined, { signal: stopping.signal }).catch(() => {});
    }
  })();
  return {
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
