import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { ENGINES, engineSkipReason, Harness } from '../helpers/harness.js';
import { subscribed, uniqueMqtt, waitUntil } from '../helpers/mqtt.js';

// Issue 14's redeliveries with one key per packet id: a real broker never lets a test choose the packet
// id, the DUP flag and the payload of what it sends, so this broker is scripted.

const MQTT5 = { protocolVersion: 5 } as const;

/**
 * Speaks just enough MQTT 5 to one subscriber: CONNACK, SUBACK, PINGRESP, then the PUBLISH packets the
 * test writes; records the PUBACKs it gets back.
 */
class ScriptedBroker {
  /** The PUBACKs got, as `messageId:reasonCode` (0: stored, or stored before). */
  readonly pubacks: string[] = [];
  #socket: Socket | undefined;

  private constructor(readonly server: Server) {}

  static async start(): Promise<ScriptedBroker> {
    const broker = new ScriptedBroker(createServer((socket) => broker.#serve(socket)));
    broker.server.listen(0, '127.0.0.1');
    await once(broker.server, 'listening');
    return broker;
  }

  get url(): string {
    const { port } = this.server.address() as { port: number };
    return `mqtt://127.0.0.1:${port}`;
  }

  publish(topic: string, payload: string, { messageId, dup = false }: { messageId?: number; dup?: boolean }) {
    const qos = messageId === undefined ? 0 : 1;
    this.#send({ cmd: 'publish', topic, payload, qos, messageId, dup, retain: false });
  }

  async close(): Promise<void> {
    this.#socket?.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  #serve(socket: Socket): void {
    this.#socket = socket;
    const parser = mqttPacket.parser(MQTT5);
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') this.#send({ cmd: 'connack', reasonCode: 0, sessionPresent: false });
      else if (packet.cmd === 'subscribe')
        this.#send({
          cmd: 'suback',
          messageId: packet.messageId,
          granted: packet.subscriptions.map(() => 1),
        });
      else if (packet.cmd === 'pingreq') this.#send({ cmd: 'pingresp' });
      else if (packet.cmd === 'puback') this.pubacks.push(`${packet.messageId}:${packet.reasonCode ?? 0}`);
    });
    socket.on('data', (chunk) => parser.parse(chunk));
    socket.on('error', () => {});
  }

  #send(packet: Packet): void {
    this.#socket?.write(mqttPacket.generate(packet, MQTT5));
  }
}

for (const engine of ENGINES) {
  describe(`MQTT redeliveries, one key per packet id [${engine}]`, { skip: engineSkipReason(engine) }, () => {
    const h = new Harness(engine);
    const { prefix, clientId } = uniqueMqtt();
    let broker: ScriptedBroker;

    before(async () => {
      broker = await ScriptedBroker.start();
      await h.start({ MQTT_URL: broker.url, MQTT_TOPIC_PREFIX: prefix, MQTT_CLIENT_ID: clientId });
      await subscribed(h);
    });
    after(async () => {
      await h.stop();
      await broker.close();
    });

    const xs = async (device: number) =>
      ((await h.get(`/data/?device_id=${device}&limit=1000`)).json() as { x: number }[])
        .map((r) => r.x)
        .sort();
    const acknowledged = (count: number) =>
      waitUntil(`${count} PUBACKs`, async () => broker.pubacks.length >= count);
    const keyRows = async () =>
      Number(
        (
          await h.db
            .selectFrom('idempotency_keys')
            .select((eb) => eb.fn.countAll().as('rows'))
            .where('scope', '=', 'mqtt')
            .executeTakeFirstOrThrow()
        ).rows,
      );

    it("stores a DUP whose payload differs from the packet id's last message, and a repeat of that DUP once", async () => {
      const device = await h.createDevice();
      const topic = `${prefix}/${device}/readings`;
      broker.publish(topic, '{"x": 1, "y": 0, "z": 0}', { messageId: 7 });
      await acknowledged(1);
      // Packet id 7 again, as a redelivery of a message whose first delivery never committed.
      broker.publish(topic, '{"x": 2, "y": 0, "z": 0}', { messageId: 7, dup: true });
      await acknowledged(2);
      broker.publish(topic, '{"x": 2, "y": 0, "z": 0}', { messageId: 7, dup: true });
      await acknowledged(3);
      assert.deepEqual(broker.pubacks, ['7:0', '7:0', '7:0']);
      assert.deepEqual(await xs(device), [1, 2]);
      // Another message reusing the acknowledged packet id, as a first delivery: stored too.
      broker.publish(topic, '{"x": 2, "y": 0, "z": 0}', { messageId: 7 });
      await acknowledged(4);
      assert.deepEqual(await xs(device), [1, 2, 2]);
      assert.equal(await keyRows(), 1, 'one key row for packet id 7, written over by each message');
    });

    it('keeps one key row per packet id however many messages reuse it, and none for QoS 0', async () => {
      const device = await h.createDevice();
      const topic = `${prefix}/${device}/readings`;
      const before = broker.pubacks.length;
      const rowsBefore = await keyRows();
      for (let i = 0; i < 30; i++)
        broker.publish(topic, `{"x": ${i}, "y": 0, "z": 0}`, { messageId: 100 + (i % 3) });
      await acknowledged(before + 30);
      assert.ok(
        broker.pubacks.slice(before).every((puback) => puback.endsWith(':0')),
        'none refused',
      );
      for (let i = 30; i < 35; i++) broker.publish(topic, `{"x": ${i}, "y": 0, "z": 0}`, {});
      await waitUntil('35 readings', async () => (await xs(device)).length === 35);
      assert.equal(await keyRows(), rowsBefore + 3);
    });
  });
}
