import type { FastifyBaseLogger } from 'fastify';
import { LRUCache } from 'lru-cache';
import type { Refusal } from './messages.js';
import type { MqttMetrics } from './metrics.js';

/** A device's refusals are logged once per window; the others are counted and summed up at its end. */
const LOG_WINDOW_MS = 60_000;
/** Devices remembered for that; a flood of made-up topics cannot grow the memory beyond this. */
const MAX_REMEMBERED = 10_000;

export interface RefusalOptions {
  log: FastifyBaseLogger;
  metrics: MqttMetrics;
  /** Republishes the reason to `PREFIX/{id}/errors` (MQTT_ERRORS_TOPIC), when on. */
  republish: ((deviceId: number, body: string, correlationData: Buffer | undefined) => void) | undefined;
}

/**
 * What happens to a refused message besides its acknowledgement: it is counted by kind, logged at
 * most once per device and minute (a broken device sending 100 messages a second must not flood the
 * logs), and its reason republished for the device when configured.
 */
export class Refusals {
  readonly #quiet: LRUCache<string, { suppressed: number }>;

  constructor(private readonly options: RefusalOptions) {
    this.#quiet = new LRUCache({
      max: MAX_REMEMBERED,
      ttl: LOG_WINDOW_MS,
      ttlAutopurge: true,
      dispose: (value, source, reason) => {
        if (value.suppressed > 0 && reason !== 'set')
          options.log.warn(
            { source, refused: value.suppressed },
            `MQTT: ${value.suppressed} more messages refused from ${source} in the last minute`,
          );
      },
    });
  }

  record(refusal: Refusal, topic: string, correlationData: Buffer | undefined): void {
    const { log, metrics, republish } = this.options;
    metrics.messages.inc({ outcome: 'refused' });
    metrics.refused.inc({ kind: refusal.kind });
    const source =
      refusal.deviceId === undefined ? `topic ${topic.slice(0, 200)}` : `device ${refusal.deviceId}`;
    const quiet = this.#quiet.get(source);
    if (quiet) quiet.suppressed++;
    else {
      this.#quiet.set(source, { suppressed: 0 });
      log.warn(
        { source, topic: topic.slice(0, 200), kind: refusal.kind, reason: refusal.reason.slice(0, 1000) },
        `MQTT message refused from ${source}: ${refusal.reason.slice(0, 200)}`,
      );
    }
    if (republish && refusal.deviceId !== undefined) {
      const body = JSON.stringify({ topic, kind: refusal.kind, reason: refusal.reason.slice(0, 4000) });
      republish(refusal.deviceId, body, correlationData);
    }
  }

  /** Writes the pending summaries (at shutdown). */
  flush(): void {
    this.#quiet.clear();
  }
}
