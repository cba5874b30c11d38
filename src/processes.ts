import cluster, { type Worker } from 'node:cluster';
import { pino } from 'pino';
import type { Config } from './config.js';
import { loggingOptions } from './http/logging.js';

/** The first wait before a dead process is started again; it doubles while processes keep dying early. */
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 30_000;
/** A process that served this long before dying is started again at once (its death was not a crash loop). */
const STABLE_AFTER_MS = 10_000;
/** How long SIGTERM waits for every process to finish its requests (each has its own drain) before SIGKILL. */
const STOP_TIMEOUT_MS = 60_000;

/**
 * `statistics serve --workers N` (WORKERS=N): this process starts N processes that each run the whole
 * service (src/server.ts) and share one port through node:cluster, which hands each new connection to
 * the next process in turn. A process that dies is started again after a wait that doubles from
 * 100 ms to 30 s while they keep dying within 10 s of starting. SIGTERM or SIGINT is passed to every
 * process, each drains as a single one would (SHUTDOWN_DELAY_MS, requests in flight), and this one
 * exits once they all have: 0 when every one stopped cleanly.
 */
export function serveProcesses(config: Config): Promise<number> {
  const log = pino({ ...(loggingOptions(config).logger as object), name: 'processes' });
  let stopping = false;
  let restartDelayMs = FIRST_RESTART_DELAY_MS;
  let failedStops = 0;
  const started = new Map<Worker, number>();

  const start = () => {
    const worker = cluster.fork();
    started.set(worker, Date.now());
    worker.once('exit', (code, signal) => {
      const ranMs = Date.now() - (started.get(worker) ?? 0);
      started.delete(worker);
      if (stopping) {
        if (code !== 0) failedStops++;
        return;
      }
      restartDelayMs = ranMs >= STABLE_AFTER_MS ? FIRST_RESTART_DELAY_MS : restartDelayMs;
      log.error(
        { workerPid: worker.process.pid, code, signal, restartInMs: restartDelayMs },
        'a server process ended: starting another',
      );
      setTimeout(() => {
        if (!stopping) start();
      }, restartDelayMs).unref();
      restartDelayMs = Math.min(restartDelayMs * 2, MAX_RESTART_DELAY_MS);
    });
  };

  log.info({ workers: config.workers }, `starting ${config.workers} server processes on one port`);
  for (let i = 0; i < config.workers; i++) start();

  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping every server process: finishing requests in flight');
      const workers = [...started.keys()];
      const killer = setTimeout(() => {
        for (const worker of workers) worker.process.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      Promise.all(workers.map(stopped)).then(() => {
        clearTimeout(killer);
        log.info({ failedStops }, 'every server process stopped');
        resolve(failedStops === 0 ? 0 : 1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/**
 * SIGTERM, whatever stopped this one: after a Ctrl-C the terminal has sent each process a SIGINT
 * already, and a second SIGINT would end it at once, while its SIGTERM handler joins the same drain.
 */
function stopped(worker: Worker): Promise<void> {
  if (worker.isDead()) return Promise.resolve();
  return new Promise((resolve) => {
    worker.once('exit', () => resolve());
    worker.process.kill('SIGTERM');
  });
}
