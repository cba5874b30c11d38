import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { connect, type IPublishPacket, type MqttClient } from 'mqtt';
import type { MqttSettings } from '../config.js';
import type { KeyUse } from '../data/idempotency.js';
import { BROKER_AUTHENTICATED, type Ingest } from '../data/ingest.js';
import { DomainError, RequestValidationError } from '../http/errors.js';
import { type Acknowledge, Acknowledgements, UNACKNOWLEDGED } from './acknowledgements.js';
import {
  type DeliveryKey,
  type DeviceMessage,
  deliveryKey,
  PUBACK_REASON,
  type Refusal,
  readMessage,
} from './messages.js';
import type { MqttMetrics } from './metrics.js';
import { Refusals } from './refusals.js';

export interface SubscriberOptions {
  settings: MqttSettings;
  ingest: Ingest;
  metrics: MqttMetrics;
  log: FastifyBaseLogger;
  /** The largest payload taken, as the largest body of `POST /data/`. */
  maxBytes: number;
}

/** QoS 1 messages the broker may send before we acknowledge one (MQTT 5 Receive Maximum). */
const RECEIVE_MAXIMUM = 100;
/** A message whose write fails (the database is down) is tried again after these waits, doubling. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;
/** The scope of the idempotency keys of MQTT deliveries. */
const MQTT_SCOPE = 'mqtt';
/** How long a stop waits for the message being written before it leaves it to the broker. */
const STOP_WAIT_MS = 10_000;

/**
 * Subscribes to `PREFIX/+/readings` at QoS 1 in a persistent session and stores each message through
 * the same ingest as `POST /data/`. A message is acknowledged (PUBACK) only after its readings are
 * committed, so a crash before that makes the broker send it again; a refused message is acknowledged
 * at once with an error reason code (the broker must not redeliver garbage forever). While the
 * database fails, messages are retried and stay unacknowledged, which also stops the broker sending
 * more than RECEIVE_MAXIMUM of them.
 */
export class MqttSubscriber {
  #client: MqttClient | undefined;
  #subscribed = false;
  #stopping = false;
  #attempts = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  readonly #writing = new Set<Promise<void>>();
  readonly #stopSignal = new AbortController();
  readonly #refusals: Refusals;

  constructor(private readonly options: SubscriberOptions) {
    const { settings, metrics, log } = options;
    this.#refusals = new Refusals({
      log,
      metrics,
      republish: settings.errorsTopic
        ? (deviceId, body, correlationData) =>
            this.#client?.publish(`${settings.topicPrefix}/${deviceId}/errors`, body, {
              qos: 0,
              properties: { contentType: 'application/json', correlationData },
            })
        : undefined,
    });
  }

  /** Connected to the broker and subscribed. */
  get connected(): boolean {
    return this.#subscribed;
  }

  get topic(): string {
    const { topicPrefix, sharedGroup } = this.options.settings;
    const topic = `${topicPrefix}/+/readings`;
    return sharedGroup === undefined ? topic : `$share/${sharedGroup}/${topic}`;
  }

  start(): void {
    if (this.#stopping || this.#client) return;
    const { settings, log } = this.options;
    const client = connect(settings.url, {
      protocolVersion: 5,
      clientId: settings.clientId,
      clean: false,
      properties: {
        sessionExpiryInterval: settings.sessionExpirySeconds,
        receiveMaximum: RECEIVE_MAXIMUM,
      },
      connectTimeout: 10_000,
      // Reconnection is ours (`#reconnectLater`): mqtt.js waits the same period every time.
      reconnectPeriod: 0,
      resubscribe: false,
      // Only for a QoS 1 message that Acknowledgements did not take over: one at a time, acknowledged
      // by mqtt.js when called back, which happens after the commit too.
      customHandleAcks: (topic, payload, packet, callback) =>
        this.#receive(topic, payload, packet, (reasonCode) => {
          if (reasonCode !== UNACKNOWLEDGED) callback(reasonCode);
        }),
    });
    this.#client = client;
    const acknowledgements = new Acknowledgements(client);
    client.on('message', (topic, payload, packet) => {
      const acknowledge = acknowledgements.of(packet);
      if (acknowledge) this.#receive(topic, payload, packet, acknowledge);
      // Published at QoS 0: stored all the same, with nothing to acknowledge (and no redelivery).
      else if (packet.qos === 0) this.#receive(topic, payload, packet, () => {});
    });
    client.on('connect', (connack) => {
      this.#attempts = 0;
      this.options.metrics.connects.inc();
      log.info(
        { clientId: settings.clientId, sessionPresent: connack.sessionPresent },
        `MQTT connected; subscribing to ${this.topic}`,
      );
      // Retained messages are not sent on subscribing (rh 2): one stored at its publication would be stored again.
      client.subscribe(this.topic, { qos: 1, rh: 2 }, (error, granted) => {
        const refused = granted?.find((grant) => grant.qos > 1);
        if (error || refused) {
          log.error({ err: error, granted }, `MQTT: the broker refused the subscription to ${this.topic}`);
          client.end(true);
          this.#reconnectLater();
          return;
        }
        this.#setSubscribed(true);
      });
    });
    client.on('close', () => {
      this.#setSubscribed(false);
      this.#reconnectLater();
    });
    client.on('error', (error) => {
      log.warn({ err: error }, `MQTT: ${error.message}`);
    });
  }

  /**
   * Stops taking messages: waits (boundedly) for those being written to be committed and
   * acknowledged, then disconnects, keeping the session: the others wait in the broker.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal.abort();
    clearTimeout(this.#reconnectTimer);
    if (this.#writing.size > 0) await Promise.race([Promise.all(this.#writing), sleep(STOP_WAIT_MS)]);
    const client = this.#client;
    if (client) await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    this.#setSubscribed(false);
    this.#refusals.flush();
  }

  #setSubscribed(subscribed: boolean): void {
    this.#subscribed = subscribed;
    this.options.metrics.connected.set(subscribed ? 1 : 0);
  }

  /** Waits 1 s, 2 s, 4 s... up to MQTT_RECONNECT_MAX_SECONDS, each between half and all of it (jitter). */
  #reconnectLater(): void {
    if (this.#stopping || this.#reconnectTimer) return;
    const ceiling = Math.min(this.options.settings.reconnectMaxSeconds * 1000, 1000 * 2 ** this.#attempts);
    const delay = Math.round(ceiling * (0.5 + Math.random() / 2));
    this.#attempts++;
    this.options.log.warn(`MQTT: broker unreachable; trying again in ${delay} ms`);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (!this.#stopping) this.#client?.reconnect();
    }, delay);
  }

  /**
   * Reads, stores and settles one message. Messages are handled side by side (single readings share
   * group commits); each is acknowledged once its readings are committed, or at once when refused.
   */
  #receive(topic: string, payload: Buffer, packet: IPublishPacket, acknowledge: Acknowledge): void {
    if (this.#stopping) {
      acknowledge(UNACKNOWLEDGED); // the broker keeps it for the next session
      return;
    }
    const received = performance.now();
    const message = readMessage(topic, payload, this.options.settings.topicPrefix, this.options.maxBytes);
    if ('kind' in message) {
      this.#refuse(message, topic, packet, acknowledge);
      return;
    }
    const key = deliveryKey(packet, message.deviceId, this.options.settings.clientId);
    const writing = this.#store(message, key).then((outcome) => {
      this.#writing.delete(writing);
      if (outcome === 'stopped') {
        acknowledge(UNACKNOWLEDGED);
        return;
      }
      if (outcome !== 'stored' && outcome !== 'redelivered') {
        this.#refuse(outcome, topic, packet, acknowledge);
        return;
      }
      this.options.metrics.messages.inc({ outcome });
      acknowledge(0);
      this.options.metrics.ackSeconds.observe((performance.now() - received) / 1000);
    });
    this.#writing.add(writing);
  }

  #refuse(refusal: Refusal, topic: string, packet: IPublishPacket, acknowledge: Acknowledge): void {
    this.#refusals.record(refusal, topic, packet.properties?.correlationData);
    acknowledge(PUBACK_REASON[refusal.kind]);
  }

  /**
   * Stores the message (all its readings or none), trying again while the database fails; answers
   * 'stored', 'redelivered' when an earlier delivery stored it (its idempotency key was recorded in the
   * same transaction as its readings), why it was refused, or 'stopped' when the service stopped first.
   * A QoS 0 message has no key: one whose commit succeeded but was reported failed is stored twice, a
   * rare duplicate that spares every QoS 0 message a key row.
   */
  async #store(
    message: DeviceMessage,
    delivery: DeliveryKey | undefined,
  ): Promise<'stored' | 'redelivered' | Refusal | 'stopped'> {
    const { ingest, metrics, log } = this.options;
    const credential = this.options.settings.deviceAuth === 'broker' ? BROKER_AUTHENTICATED : undefined;
    const store = (key?: KeyUse): Promise<unknown> =>
      Array.isArray(message.readings)
        ? ingest.batch(message.readings, credential, key)
        : ingest.one(message.readings, credential, key);
    // After a failed attempt the key is looked up: the commit may have happened without its answer.
    for (let wait = RETRY_FIRST_MS, lookUp = delivery?.mayRepeat; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      try {
        if (delivery === undefined) {
          await store();
          return 'stored';
        }
        const write = { scope: MQTT_SCOPE, key: delivery.key, fingerprint: delivery.fingerprint };
        const { replayed } = await ingest.keys.once(
          write,
          write.fingerprint,
          (mode) => store({ write, mode }),
          {
            first: lookUp ? 'look-up' : 'overwrite',
            otherFingerprint: delivery.otherPayload === 'store' ? 'overwrite' : 'conflict',
          },
        );
        return replayed ? 'redelivered' : 'stored';
      } catch (error) {
        const refusal = refusalOf(error, message.deviceId);
        if (refusal) return refusal;
        lookUp = true;
        metrics.storeRetries.inc();
        if (wait === RETRY_FIRST_MS)
          log.warn({ err: error }, 'MQTT: storing a message failed; trying again, unacknowledged');
        try {
          await sleep(wait, undefined, { signal: this.#stopSignal.signal });
        } catch {
          return 'stopped';
        }
      }
    }
  }
}

/** An error of the ingest that refuses the message itself (a 4xx over HTTP), or undefined (try again). */
function refusalOf(error: unknown, deviceId: number): Refusal | undefined {
  if (error instanceof RequestValidationError) {
    const unknown = error.issues.every((issue) => issue.type === 'value_error.device_not_found');
    const reason = error.issues.map((issue) => `${issue.loc.slice(1).join('.')}: ${issue.msg}`).join('; ');
    return { deviceId, kind: unknown ? 'unknown_device' : 'invalid', reason };
  }
  if (error instanceof DomainError && error.statusCode < 500) {
    const kind =
      error.code === 'NOT_FOUND'
        ? 'unknown_device'
        : error.code === 'UNAUTHORIZED'
          ? 'unauthorized'
          : 'invalid';
    return { deviceId, kind, reason: error.message };
  }
  return undefined;
}
