/**
 * The MQTT scenarios of `npm run bench`: one device publishing at QoS 1 (single readings, then
 * 1,000-reading payloads) to the broker the server subscribes to, readings/s from the first publish to
 * the last commit, and the time from each publish to the server's PUBACK, which it sends once the
 * readings are committed. The broker's own PUBACK to the publisher says nothing about the server, so
 * the server reaches the broker through a proxy here that watches its PUBACKs (and the PUBLISHes the
 * broker hands it, carrying the publisher's sequence number as MQTT 5 correlation data).
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAsync, type MqttClient } from 'mqtt';
import { parser as mqttParser, type Packet } from 'mqtt-packet';
import { makeReadings } from './readings.js';

/** QoS 1 publishes the device keeps outstanding (awaiting the broker's PUBACK). */
const WINDOW = 100;
/**
 * Messages published but not yet acknowledged by the server, at most: the broker acknowledges the
 * device at once and queues for the server (Mosquitto's default drops what a session has queued
 * beyond 1,000 messages). The device runs ahead of the server by this much: 500 single readings
 * (five times the server's Receive Maximum), or 20,000 readings in batches.
 */
const MAX_QUEUED_MESSAGES = 500;
const MAX_QUEUED_READINGS = 20_000;
/** Bounds of one scenario, whatever BENCH_SECONDS says. */
const MAX_MESSAGES = 2_000_000;
const DRAIN_TIMEOUT_MS = 120_000;

export interface MqttFigure {
  messages: number;
  readingsPerMessage: number;
  readingsPerSecond: number;
  /** From the device's publish to the server's PUBACK (after the commit), over every message. */
  latencyMs: { p50: number; p99: number; max: number };
  seconds: number;
  /** The most messages the device ran ahead of the server's PUBACKs. */
  maxQueued: number;
}

export interface MqttResult {
  single: MqttFigure;
  batch: MqttFigure;
}

/** Forwards the server's MQTT connection to the broker, timing each of its PUBACKs against its publish. */
export class PubackWatch {
  #server: Server | undefined;
  /** Publish time by sequence number, set by the publisher. */
  readonly published = new Map<number, number>();
  /** The sequence number of each message id the broker handed the server, until its PUBACK. */
  readonly #delivered = new Map<number, number>();
  readonly latenciesMs: number[] = [];
  acknowledged = 0;
  lastAckAt = 0;
  readonly #sockets = new Set<Socket>();

  constructor(private readonly brokerUrl: string) {}

  /** Listens on a free port of 127.0.0.1; answers the URL the server connects to. */
  async listen(): Promise<string> {
    const broker = new URL(this.brokerUrl);
    this.#server = createServer((client) => {
      const upstream = tcpConnect({ host: broker.hostname, port: Number(broker.port || 1883) });
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const toServer = mqttParser({ protocolVersion: 5 });
      toServer.on('packet', (packet: Packet) => this.#fromBroker(packet));
      const fromServer = mqttParser({ protocolVersion: 5 });
      fromServer.on('packet', (packet: Packet) => this.#fromServer(packet));
      upstream.on('data', (chunk: Buffer) => {
        toServer.parse(chunk);
        client.write(chunk);
      });
      client.on('data', (chunk: Buffer) => {
        fromServer.parse(chunk);
        upstream.write(chunk);
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.#server.address() as { port: number };
    return `mqtt://127.0.0.1:${port}`;
  }

  #fromBroker(packet: Packet): void {
    if (packet.cmd !== 'publish' || packet.messageId === undefined) return;
    const sequence = packet.properties?.correlationData;
    if (sequence && sequence.length === 8)
      this.#delivered.set(packet.messageId, Number(sequence.readBigUInt64BE()));
  }

  #fromServer(packet: Packet): void {
    if (packet.cmd !== 'puback' || packet.messageId === undefined) return;
    const sequence = this.#delivered.get(packet.messageId);
    if (sequence === undefined) return;
    this.#delivered.delete(packet.messageId);
    const sentAt = this.published.get(sequence);
    if (sentAt === undefined) return;
    this.published.delete(sequence);
    this.lastAckAt = performance.now();
    this.latenciesMs.push(this.lastAckAt - sentAt);
    this.acknowledged++;
  }

  reset(): void {
    this.published.clear();
    this.latenciesMs.length = 0;
    this.acknowledged = 0;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

/** One device publishing `payload` for `seconds` with WINDOW messages outstanding, until all are acknowledged. */
async function publishFor(
  device: MqttClient,
  watch: PubackWatch,
  topic: string,
  payload: string,
  readingsPerMessage: number,
  seconds: number,
  firstSequence: number,
): Promise<MqttFigure> {
  watch.reset();
  const maxQueued = Math.min(MAX_QUEUED_MESSAGES, Math.ceil(MAX_QUEUED_READINGS / readingsPerMessage));
  let sequence = firstSequence;
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < stopAt && sequence - firstSequence < MAX_MESSAGES) {
      while (watch.published.size >= maxQueued) await sleep(1);
      const k = sequence++;
      const correlationData = Buffer.alloc(8);
      correlationData.writeBigUInt64BE(BigInt(k));
      watch.published.set(k, performance.now());
      await device.publishAsync(topic, payload, { qos: 1, properties: { correlationData } });
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, loop));
  const messages = sequence - firstSequence;
  const drainDeadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (watch.acknowledged < messages && performance.now() < drainDeadline) await sleep(20);
  if (watch.acknowledged < messages)
    throw new Error(`the server acknowledged ${watch.acknowledged} of ${messages} messages`);
  const secondsTaken = (watch.lastAckAt - started) / 1000;
  const sorted = [...watch.latenciesMs].sort((a, b) => a - b);
  const at = (share: number) => sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? 0;
  return {
    messages,
    readingsPerMessage,
    readingsPerSecond: (messages * readingsPerMessage) / secondsTaken,
    latencyMs: { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? 0 },
    seconds: secondsTaken,
    maxQueued,
  };
}

/**
 * Both scenarios against a server subscribed (through `watch`) under `prefix`, for device `deviceId`;
 * a warm-up of a second before each.
 */
export async function benchMqtt(
  brokerUrl: string,
  watch: PubackWatch,
  prefix: string,
  deviceId: number,
  seconds: number,
  batchSize: number,
): Promise<MqttResult> {
  const device = await connectAsync(brokerUrl, { protocolVersion: 5, clientId: `bench-device-${deviceId}` });
  try {
    const topic = `${prefix}/${deviceId}/readings`;
    const single = JSON.stringify({ x: 1.5, y: 2.5, z: 3.5 });
    const batch = JSON.stringify(makeReadings(batchSize, deviceId, 5));
    await publishFor(device, watch, topic, single, 1, 1, 0);
    const singleFigure = await publishFor(device, watch, topic, single, 1, seconds, 10_000_000);
    await publishFor(device, watch, topic, batch, batchSize, 1, 20_000_000);
    const batchFigure = await publishFor(device, watch, topic, batch, batchSize, seconds, 30_000_000);
    return { single: singleFigure, batch: batchFigure };
  } finally {
    await device.endAsync();
  }
}

/** Whether a broker answers at `url` (the MQTT scenarios are skipped, with the reason, otherwise). */
export async function brokerAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: hostname, port: Number(port || 1883) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
