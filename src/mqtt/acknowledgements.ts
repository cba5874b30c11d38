import type { IPublishPacket, MqttClient } from 'mqtt';
import { generate } from 'mqtt-packet';

/**
 * Settles one message: 0 once its readings are committed, an MQTT 5 error reason code when refused,
 * or UNACKNOWLEDGED to send no PUBACK at all (the service stops first: the broker sends it again).
 */
export type Acknowledge = (reasonCode: number) => void;
export const UNACKNOWLEDGED = -1;

/**
 * mqtt.js hands QoS 1 messages over one at a time and acknowledges each when its handler calls back
 * (`customHandleAcks`), so a message waits for the commit of the one before it and single readings
 * never share a group commit. This takes the acknowledgement over instead: each QoS 1 PUBLISH is
 * marked QoS 0 for mqtt.js as it arrives (the `packetreceive` event comes before mqtt.js handles the
 * packet), so mqtt.js sends no PUBACK and passes the next message on at once; the PUBACK is written
 * here once the message is settled, in the order the PUBLISHes came (MQTT-4.6.0-2), and only on the
 * connection it came by: after a reconnection the broker sends an unacknowledged message again.
 * The broker's in-flight window (Receive Maximum) still bounds how many are unacknowledged at once.
 */
export class Acknowledgements {
  readonly #slots = new WeakMap<IPublishPacket, Acknowledge>();
  #queue: { messageId: number; reasonCode: number | undefined }[] = [];

  constructor(private readonly client: MqttClient) {
    client.on('packetreceive', (packet) => {
      if (packet.cmd !== 'publish' || packet.qos !== 1 || packet.messageId === undefined) return;
      this.#slots.set(packet, this.#slot(packet.messageId));
      packet.qos = 0;
    });
    // The queue belongs to one connection; what it held is sent again by the broker.
    client.on('close', () => {
      this.#queue = [];
    });
  }

  /** The acknowledgement taken over for `packet`, or undefined for a packet mqtt.js acknowledges itself. */
  of(packet: IPublishPacket): Acknowledge | undefined {
    const acknowledge = this.#slots.get(packet);
    this.#slots.delete(packet);
    return acknowledge;
  }

  #slot(messageId: number): Acknowledge {
    const queue = this.#queue;
    const entry: { messageId: number; reasonCode: number | undefined } = { messageId, reasonCode: undefined };
    queue.push(entry);
    return (reasonCode) => {
      entry.reasonCode = reasonCode;
      if (queue === this.#queue) this.#flush();
    };
  }

  #flush(): void {
    const stream = this.client.stream;
    while (this.#queue[0]?.reasonCode !== undefined) {
      const { messageId, reasonCode } = this.#queue.shift() as { messageId: number; reasonCode: number };
      if (reasonCode === UNACKNOWLEDGED || stream.destroyed || !stream.writable) continue;
      stream.write(generate({ cmd: 'puback', messageId, reasonCode }, { protocolVersion: 5 }));
    }
  }
}
