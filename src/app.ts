import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Config } from './config.js';
import { BatchTurns } from './data/batch-turns.js';
import { bulkStoreOf } from './data/copy-readings.js';
import { createIngest } from './data/ingest.js';
import { dataRoutes } from './data/routes.js';
import { BatchResult, ImportReport, Reading, ReadingCreate } from './data/schemas.js';
import { transferRoutes } from './data/transfer-routes.js';
import type { OpenedDatabase } from './db/database.js';
import { createReads } from './db/read-replicas.js';
import { announceDeviceChange, listenForDeviceChanges } from './devices/device-changes.js';
import { KnownDevices } from './devices/known-devices.js';
import { deviceRoutes } from './devices/routes.js';
import { CreatedDevice, Device, DeviceCreate, DeviceUpdate, IngestToken } from './devices/schemas.js';
import { Lifecycle } from './health/lifecycle.js';
import { Health, healthRoutes, Readiness, startingGate } from './health/routes.js';
import { limitBodyTime } from './http/body-deadline.js';
import { refuseCrossSiteWrites } from './http/cross-site.js';
import { registerErrorHandler } from './http/error-handler.js';
import { registerJsonBodyParser } from './http/json-body.js';
import { answerRequestIds, loggingOptions } from './http/logging.js';
import { registerOpenApi } from './http/openapi.js';
import { countsStore } from './http/rate-limits.js';
import { registerRoutingFallbacks } from './http/routing-fallbacks.js';
import { ErrorResponse, ValidationErrorResponse } from './http/schemas.js';
import { sendSecureHeaders } from './http/secure-headers.js';
import { IDLE_TIMEOUT_MS } from './http/timeouts.js';
import { validatorCompiler } from './http/validation.js';
import { collectProcessMetrics, createMetrics, type Metrics } from './metrics/metrics.js';
import { metricsRoutes, recordRequests } from './metrics/routes.js';
import { registerMqttIngest } from './mqtt/mqtt-ingest.js';
import { closeRedis, connectRedis, firstConnection, redisReady } from './redis/redis-client.js';
import { createHeavyQueries } from './statistics/heavy-runner.js';
import { foldSteps, foldThread, type RollupFolder, startRollupFolder } from './statistics/rollup-folder.js';
import { statisticsRoutes } from './statistics/routes.js';
import { OriginalStatistics, Statistics } from './statistics/schemas.js';
import { SeriesValues, seriesRoutes } from './statistics/series-routes.js';
import { authRoutes } from './users/auth-routes.js';
import { createAuthenticator } from './users/authenticate.js';
import { BearerToken, LoginForm, UserCreate, UserRead, UserUpdate } from './users/schemas.js';
import { createTokenService } from './users/tokens.js';
import { userRoutes } from './users/user-routes.js';
import { webRoutes } from './web/routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's metrics registry and instruments (served by a separate listener when METRICS_PORT is set). */
    metrics: Metrics;
  }
}

/** A plugin's longest registration (see the Fastify options below). */
const PLUGIN_TIMEOUT_MS = 120_000;

/**
 * The one Fastify factory: the server and the tests both build the app here, with the same options.
 * `lifecycle` says whether the migrations have run: a server that listens before running them passes
 * a starting one, and only the health paths answer until it is ready.
 */
export async function buildApp(
  config: Config,
  database: OpenedDatabase,
  lifecycle: Lifecycle = new Lifecycle('ready'),
): Promise<FastifyInstance> {
  const { db, engine } = database;
  const app = Fastify({
    ...loggingOptions(config),
    bodyLimit: config.bodyLimitBytes,
    // A socket that sends nothing for 30 s is closed: idle sockets do not pile up. No limit on a
    // request's total time: it cut streamed imports of any size at 30 s (imports answer their own
    // idle timeout with what was stored, src/data/transfer-routes.ts).
    connectionTimeout: IDLE_TIMEOUT_MS,
    requestTimeout: 0,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    trustProxy: trustedProxies(config.trustProxy),
    // Limits on what a client may send beyond the body: long URLs and path parameters.
    routerOptions: { maxParamLength: 200 },
    // Errors raised by the router before a route is found (a malformed URL) get the same JSON shape.
    frameworkErrors: (error, _request, reply) => {
      (reply as FastifyReply).code(error.statusCode ?? 400).send({ detail: error.message });
    },
    http: { maxHeaderSize: 16_384, headersTimeout: IDLE_TIMEOUT_MS },
    // How long one plugin may take to load before the start fails. Fastify's 10 s was passed on a
    // machine at a load of 16-25 on 2 cores (its plugins do no network waits: a slow start there is
    // only a busy CPU); a plugin that never ends its registration still fails the start.
    pluginTimeout: PLUGIN_TIMEOUT_MS,
  }).withTypeProvider<TypeBoxTypeProvider>();

  const metrics = createMetrics(database.pool);
  app.decorate('metrics', metrics);
  answerRequestIds(app);
  app.addHook('onRequest', startingGate(lifecycle));
  if (config.metrics.enabled) {
    collectProcessMetrics(metrics);
    recordRequests(app, metrics);
  }

  app.setValidatorCompiler(validatorCompiler);
  app.decorateRequest('user', null);
  app.decorateRequest('token', null);
  registerErrorHandler(app);
  registerRoutingFallbacks(app);
  registerJsonBodyParser(app);
  limitBodyTime(app, config.bodyTimeoutMs);
  sendSecureHeaders(app);
  refuseCrossSiteWrites(app, config.corsOrigins);
  // No origin is allowed by default: browsers on other sites cannot call the API until configured. Without
  // CORS_ORIGINS the plugin is not registered at all: with `origin: false` it answered nothing either,
  // yet its hook copied its options for every request (a preflight still gets the not-found answer).
  if (config.corsOrigins.length > 0) await app.register(cors, { origin: [...config.corsOrigins] });

  // The shapes named in the OpenAPI document (and so in generated clients).
  await registerOpenApi(app, [
    ErrorResponse,
    ValidationErrorResponse,
    UserCreate,
    UserRead,
    UserUpdate,
    LoginForm,
    BearerToken,
    DeviceCreate,
    DeviceUpdate,
    Device,
    CreatedDevice,
    IngestToken,
    ReadingCreate,
    Reading,
    BatchResult,
    ImportReport,
    config.statisticsKeys === 'original' ? OriginalStatistics : Statistics,
    SeriesValues,
    Health,
    Readiness,
  ]);

  // Statistics, series, lists and exports may read from a replica; everything else uses `db`.
  const reads = createReads(database, config.readReplicas, metrics, app.log);
  app.addHook('onClose', () => reads.close());
  const tokens = createTokenService(config.jwtSecret, config.jwtLifetimeSeconds);
  const auth = createAuthenticator(db, tokens);
  const devices = new KnownDevices(db, announceDeviceChange(db, engine));
  if (engine === 'postgres') {
    const changes = listenForDeviceChanges(config.databaseUrl, devices, app.log);
    app.addHook('onClose', () => changes.close());
  }
  const ingest = createIngest(db, engine, {
    devices,
    maxFutureSkewSeconds: config.maxFutureSkewSeconds,
    ingestAuth: config.ingestAuth,
    metrics,
    bulkStore: bulkStoreOf(database),
  });
  const counts = countsStore(sharedRedis(app, config, lifecycle));
  await app.register(authRoutes, { db, tokens, auth, rateLimits: config.rateLimits, counts });
  await app.register(userRoutes, { db, auth });
  await app.register(deviceRoutes, { db, reads, auth, devices, ingestAuth: config.ingestAuth });
  await app.register(dataRoutes, {
    reads,
    ingest,
    batchBodyLimitBytes: config.batchBodyLimitBytes,
    // SQLite only: there a batch is stored inside the callback that read it (batch-turns.ts); on PostgreSQL
    // the store is asynchronous, the pool's own line is in order, and taking turns cost a sixth of the rate.
    batchTurns: engine === 'sqlite' ? new BatchTurns(config.ingestBatchQueue) : undefined,
    ingestAuth: config.ingestAuth,
  });
  await app.register(transferRoutes, { db, reads, ingest, ingestAuth: config.ingestAuth });
  const heavy = createHeavyQueries(database, config.heavyQueries, metrics, reads, ingest.busy, app.log);
  app.addHook('onClose', () => heavy.close());
  await app.register(statisticsRoutes, {
    db,
    heavy,
    keys: config.statisticsKeys,
    retention: config.retention,
    lightReadings: config.heavyQueries.lightReadings,
  });
  if (config.rollupFoldIntervalMs > 0) {
    // Folding needs the migrated schema: it starts once the migrations have run.
    let folder: RollupFolder | undefined;
    let thread: ReturnType<typeof foldThread> | undefined;
    app.addHook('onReady', async () =>
      lifecycle.whenReady(() => {
        // SQLite: the folder's reads and sketches in a heavy-query worker, its writes through the one
        // writer. PostgreSQL: whole steps in a thread of their own, on their own connection.
        if (engine === 'postgres')
          thread = foldThread(config.databaseUrl, config.heavyQueries.threadMemoryMb, app.log);
        const steps = thread?.steps ?? foldSteps(db, engine, (input) => heavy.background('foldPlan', input));
        folder = startRollupFolder(steps, config.rollupFoldIntervalMs, app.log, ingest.busy);
      }),
    );
    app.addHook('onClose', async () => {
      await folder?.stop();
      await thread?.close();
    });
  }
  await app.register(seriesRoutes, {
    db,
    reads,
    heavy,
    maxSeriesBuckets: config.maxSeriesBuckets,
    retention: config.retention,
  });
  await app.register(healthRoutes, { db, engine, lifecycle });
  // With a port of its own, /metrics is never on the API port.
  if (config.metrics.token !== undefined && config.metrics.port === undefined) {
    await app.register(metricsRoutes, { metrics, token: config.metrics.token });
  }
  await app.register(webRoutes);
  if (config.mqtt) {
    registerMqttIngest(app, {
      settings: config.mqtt,
      ingest,
      metrics,
      lifecycle,
      maxBytes: config.batchBodyLimitBytes,
    });
  }
  return app;
}

/**
 * The Redis of REDIS_URL, when set: shown by `/ready`, but informational, as the API serves without it
 * (the rate limits then count per process); closed with the app.
 */
function sharedRedis(app: FastifyInstance, config: Config, lifecycle: Lifecycle) {
  if (config.redis === undefined) return undefined;
  const client = connectRedis(config.redis, app.metrics, app.log);
  lifecycle.addCheck('redis', async () => redisReady(client), { informational: true });
  app.addHook('onReady', () => firstConnection(client));
  app.addHook('onClose', () => closeRedis(client));
  return { client, keyPrefix: config.redis.keyPrefix };
}

/**
 * TRUST_PROXY for Fastify. A hop count trusts that many proxies nearest the service, whoever they are
 * (Fastify 5.12 reads a bare number as "trust none", so the count is given as the function it means);
 * proxies' addresses are checked against the connection, so they are the safer choice.
 */
function trustedProxies(setting: Config['trustProxy']) {
  if (typeof setting !== 'number') return setting;
  return (_address: string, hop: number) => hop < setting;
}
