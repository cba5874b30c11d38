import type { FastifyBaseLogger } from 'fastify';
import type { Piscina } from 'piscina';

/**
 * The threads that run statistics (SQLite's heavy-query pools) and fold rollups (PostgreSQL's fold
 * thread) each have a V8 old generation of STATISTICS_THREAD_MEMORY_MB. A task past it ends its thread:
 * Node ends the worker with ERR_WORKER_OUT_OF_MEMORY, piscina rejects the task it ran with that error
 * and starts another thread in its place (piscina's _onError), and the process goes on.
 */

/** Whether a task failed because its thread ended at its heap limit. */
export function threadOutOfMemory(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
}

/**
 * A thread that fails with no task of its own (piscina emits 'error' on the pool then: say, a replacement
 * that ended at its heap limit as it started) is logged; unheard, the event would end the process.
 */
export function logPoolErrors(pool: Piscina, log: FastifyBaseLogger, what: string): void {
  pool.on('error', (error: unknown) => log.error({ err: error }, `a ${what} thread failed outside any task`));
}
