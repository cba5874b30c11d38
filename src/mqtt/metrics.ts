import { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '../metrics/metrics.js';

/** MQTT ingest's instruments, on the app's registry. */
export interface MqttMetrics {
  readonly connected: Gauge;
  readonly connects: Counter;
  readonly messages: Counter<'outcome'>;
  readonly refused: Counter<'kind'>;
  readonly storeRetries: Counter;
  /** From a message's arrival to its PUBACK (after the commit). */
  readonly ackSeconds: Histogram;
}

export function mqttMetrics({ registry }: Metrics): MqttMetrics {
  const registers = [registry];
  return {
    connected: new Gauge({
      name: 'statistics_mqtt_connected',
      help: '1 while the MQTT subscriber is connected to the broker and subscribed, 0 otherwise',
      registers,
    }),
    connects: new Counter({
      name: 'statistics_mqtt_connects_total',
      help: 'Successful connections to the MQTT broker (the first one and each reconnection)',
      registers,
    }),
    messages: new Counter({
      name: 'statistics_mqtt_messages_total',
      help: 'MQTT messages acknowledged, by outcome: stored, redelivered (stored by an earlier delivery), or refused (never stored)',
      labelNames: ['outcome'],
      registers,
    }),
    refused: new Counter({
      name: 'statistics_mqtt_refused_total',
      help: 'MQTT messages refused, by why: topic, too_large, json, too_many, invalid, other_device, unknown_device, unauthorized',
      labelNames: ['kind'],
      registers,
    }),
    storeRetries: new Counter({
      name: 'statistics_mqtt_store_retries_total',
      help: 'Writes of an MQTT message retried because the database failed (the message stays unacknowledged)',
      registers,
    }),
    ackSeconds: new Histogram({
      name: 'statistics_mqtt_ack_seconds',
      help: 'From the arrival of an MQTT message to its acknowledgement, once its readings are committed',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    }),
  };
}
