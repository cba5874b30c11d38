import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { openDatabase } from './db/database.js';
import { type MaintenanceJob, scheduleMaintenance } from './db/maintenance-job.js';
import { migrateToLatest } from './db/migrate.js';
import { Lifecycle } from './health/lifecycle.js';
import { listenForMetrics } from './metrics/routes.js';

export interface RunningServer {
  app: FastifyInstance;
  /** Where the API listens, `http://host:port`. */
  url: string;
  /** Where the metrics listener is, when METRICS_PORT is set. */
  metricsUrl: string | undefined;
  /**
   * Stops gracefully: `/ready` turns 503 at once, requests keep being served for SHUTDOWN_DELAY_MS,
   * then no new connection is taken, requests in flight finish, and the database is closed.
   */
  stop(): Promise<void>;
}

/**
 * config -> database -> app -> listen -> migrations -> ready. Listening before the migrations lets
 * an orchestrator see the process alive (`/health`) during a long migration, while `/ready` and every
 * route but the health ones answer 503 until it is done.
 */
export async function startServer(config: Config): Promise<RunningServer> {
  const database = openDatabase(config.databaseUrl, 'server', config.sqliteWalLimitBytes);
  const lifecycle = new Lifecycle('starting');
  let app: FastifyInstance;
  try {
    app = await buildApp(config, database, lifecycle);
  } catch (error) {
    await database.close();
    throw error;
  }
  app.addHook('onClose', () => database.close());
  let metricsServer: Server | undefined;
  let maintenance: MaintenanceJob | undefined;
  try {
    await app.listen({
      host: config.host,
      port: config.port,
      listenTextResolver: (address) => `Listening at ${address}; running the database migrations`,
    });
    if (config.metrics.port !== undefined)
      metricsServer = await listenForMetrics(app.metrics, config.metrics);
    const applied = await migrateToLatest(database.db, {
      waitMs: config.databaseWaitMs,
      onRetry: (line) => app.log.warn(line),
    });
    if (applied.length > 0) app.log.info({ migrations: applied }, 'database migrated');
    maintenance = scheduleMaintenance(database, config.retention, app.log);
  } catch (error) {
    metricsServer?.close();
    await app.close();
    throw error;
  }
  lifecycle.ready();
  const url = addressOf(app.server.address() as AddressInfo);
  app.log.info({ database: database.engine }, `Server listening at ${url}, ready; API docs at /docs`);
  const metricsUrl = metricsServer ? addressOf(metricsServer.address() as AddressInfo) : undefined;
  if (metricsUrl) app.log.info(`Metrics at ${metricsUrl}/metrics`);

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    lifecycle.drain();
    if (config.shutdownDelayMs > 0) await sleep(config.shutdownDelayMs);
    // Fastify closes the connections idle when the stop begins; a keep-alive connection whose request
    // finishes during the drain would otherwise hold the process for the whole keep-alive timeout.
    const closeIdle = setInterval(() => app.server.closeIdleConnections(), 50);
    try {
      metricsServer?.close();
      maintenance?.stop();
      await app.close();
    } finally {
      clearInterval(closeIdle);
    }
  };
  return {
    app,
    url,
    metricsUrl,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

function addressOf({ address, family, port }: AddressInfo): string {
  return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
}
