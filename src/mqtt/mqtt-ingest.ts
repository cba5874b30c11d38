import type { FastifyInstance } from 'fastify';
import type { MqttSettings } from '../config.js';
import type { Ingest } from '../data/ingest.js';
import type { Lifecycle } from '../health/lifecycle.js';
import type { Metrics } from '../metrics/metrics.js';
import { mqttMetrics } from './metrics.js';
import { MqttSubscriber } from './subscriber.js';

export interface MqttIngestOptions {
  settings: MqttSettings;
  ingest: Ingest;
  metrics: Metrics;
  lifecycle: Lifecycle;
  /** The largest payload taken: BATCH_BODY_LIMIT_BYTES, as for `POST /data/`. */
  maxBytes: number;
}

/**
 * Ingest from the broker, as part of the app: it subscribes once the migrations have run, shows the
 * broker in `/ready` (without making HTTP unready: HTTP does not need the broker, and every process
 * leaving the load balancer over a broker outage would take the API down with it), and stops before
 * the database closes, letting the message being written be committed and acknowledged.
 */
export function registerMqttIngest(app: FastifyInstance, options: MqttIngestOptions): MqttSubscriber {
  const { settings, ingest, metrics, lifecycle, maxBytes } = options;
  const subscriber = new MqttSubscriber({
    settings,
    ingest,
    metrics: mqttMetrics(metrics),
    log: app.log.child({ feature: 'mqtt' }),
    maxBytes,
  });
  lifecycle.addCheck('mqtt', async () => subscriber.connected, { informational: true });
  app.addHook('onReady', async () => lifecycle.whenReady(() => subscriber.start()));
  app.addHook('preClose', () => subscriber.stop());
  return subscriber;
}
