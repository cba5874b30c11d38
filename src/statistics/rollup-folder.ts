import { extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { Piscina } from 'piscina';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import type { FoldStep } from './fold-worker.js';
import { logPoolErrors, threadOutOfMemory } from './query-threads.js';
import {
  type FoldCursor,
  type Folded,
  type FoldPlanner,
  foldRollups,
  LOCK_NOT_AVAILABLE,
} from './rollup-fold.js';

/**
 * Readings one fold step reads at most (a step is one short write transaction). On SQLite the reading
 * and computing run in a heavy-query worker (`planner`), and only the writes on the event loop; on
 * PostgreSQL the whole step runs in a thread of its own (`foldThread`).
 */
export const FOLD_STEP_READINGS = 5_000;

/**
 * The folder's pace while ingest is busy (Ingest.busy: readings stored within the last second): after each step it waits
 * PACE times as long as the step took, so catching up takes at most 1 / (1 + PACE) of the time the
 * batches need. The hour, day and month rollups lag further behind meanwhile (approximate answers
 * read the backlog from the minute rollups and readings, which makes them slower, not wrong), and
 * catch up at full speed once ingest pauses for a second.
 */
const PACE = 4;

/**
 * One fold step after `after` (rollup-fold.ts foldRollups): undefined when another process holds the
 * folder's lock; an error with the code LOCK_NOT_AVAILABLE when it gave way to a write.
 */
export type FoldSteps = (after: FoldCursor | undefined) => Promise<Folded | undefined>;

/** The folder job: its stop() waits for the step in progress. */
export interface RollupFolder {
  stop(): Promise<void>;
}

/** The steps in the server's process: SQLite's writes, with its plans made by `planner` (a heavy-query worker). */
export function foldSteps(db: Kysely<Database>, engine: Engine, planner?: FoldPlanner): FoldSteps {
  return (after) => foldRollups(db, engine, FOLD_STEP_READINGS, undefined, planner, after);
}

/**
 * PostgreSQL's steps in a thread of their own (fold-worker.ts) with its own connection to `url`, off
 * the event loop that parses the batches. close() ends the thread.
 */
export function foldThread(
  url: string,
  memoryMb: number,
  log: FastifyBaseLogger,
): { steps: FoldSteps; close(): Promise<void> } {
  // The worker is TypeScript under tsx (tests, npm run dev) and JavaScript once built (npm start).
  const here = fileURLToPath(import.meta.url);
  const pool = new Piscina({
    filename: new URL(`./fold-worker${extname(here)}`, import.meta.url).href,
    minThreads: 1,
    maxThreads: 1,
    // STATISTICS_THREAD_MEMORY_MB: a step past it ends the thread (piscina starts another), and is tried again.
    resourceLimits: { maxOldGenerationSizeMb: memoryMb },
    workerData: { url },
  });
  logPoolErrors(pool, log, 'folding');
  return {
    async steps(after) {
      const step = (await pool.run({ maxReadings: FOLD_STEP_READINGS, after })) as FoldStep;
      if ('gaveWay' in step) throw Object.assign(new Error(step.gaveWay), { code: LOCK_NOT_AVAILABLE });
      return step.folded;
    },
    close: () => pool.destroy(),
  };
}

/**
 * Every `intervalMs`, folds the changed hours into the hour, day and month rollups (rollup-fold.ts)
 * in steps until none is left, yielding to the event loop between steps, and pacing them while
 * ingest is busy (`ingestBusy`: whether this process stored readings within the last second).
 * Several processes may run it on one PostgreSQL database: its advisory lock lets one fold at a time.
 */
export function startRollupFolder(
  steps: FoldSteps,
  intervalMs: number,
  log: FastifyBaseLogger,
  ingestBusy: () => boolean,
): RollupFolder {
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        let after: FoldCursor | undefined;
        for (;;) {
          if (stopping.signal.aborted) return;
          const started = performance.now();
          const folded = await steps(after);
          if (!folded || folded.hours === 0) break;
          after = folded.next;
          if (ingestBusy()) {
            await sleep(PACE * (performance.now() - started), undefined, { signal: stopping.signal }).catch(
              () => {},
            );
          } else {
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      } catch (error) {
        if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
          log.info('folding gave way to a write holding a minute rollup; trying again later');
        } else if (threadOutOfMemory(error)) {
          // Nothing of the step was written (its transaction, or SQLite's writes after its plan, never ran).
          log.error(
            'a fold step needed more memory than STATISTICS_THREAD_MEMORY_MB allows its thread; trying again ' +
              'at the next ROLLUP_FOLD_INTERVAL_MS (raise the setting if this repeats)',
          );
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
