import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import secureJson from 'secure-json-parse';
import { IngestBody, MAX_BATCH, type ReadingCreate } from '../data/schemas.js';
import { MAX_ID } from '../http/schemas.js';
import { compileBodyValidator, toValidationIssues } from '../http/validation.js';

/** A message's readings, every one of them for the device its topic names. */
export interface DeviceMessage {
  deviceId: number;
  /** One reading, or a batch (stored all or none), as `POST /data/` takes them. */
  readings: ReadingCreate | ReadingCreate[];
}

/** Why a message is refused, in a few words a device's developer can act on. */
export interface Refusal {
  deviceId: number | undefined;
  /** A label for the metrics: one of a few fixed words. */
  kind: RefusalKind;
  reason: string;
}

export type RefusalKind =
  | 'topic'
  | 'too_large'
  | 'json'
  | 'too_many'
  | 'invalid'
  | 'other_device'
  | 'unknown_device'
  | 'unauthorized';

/** MQTT 5 PUBACK reason codes a refused message is acknowledged with (the broker logs them). */
export const PUBACK_REASON: Record<RefusalKind, number> = {
  topic: 0x90, // topic name invalid
  too_large: 0x97, // quota exceeded (the payload is over the size limit)
  json: 0x99, // payload format invalid
  too_many: 0x97,
  invalid: 0x99,
  other_device: 0x87, // not authorized
  unknown_device: 0x83, // implementation specific error
  unauthorized: 0x87,
};

const validateBody = compileBodyValidator<ReadingCreate | ReadingCreate[]>(IngestBody);

/** The device id in `PREFIX/{id}/readings`, or undefined when the topic names none. */
export function topicDevice(topic: string, prefix: string): number | undefined {
  const rest = topic.startsWith(`${prefix}/`) ? topic.slice(prefix.length + 1) : undefined;
  const match = rest === undefined ? null : /^([1-9]\d{0,15})\/readings$/.exec(rest);
  const id = match ? Number(match[1]) : undefined;
  return id !== undefined && id <= MAX_ID ? id : undefined;
}

/**
 * Reads one message as `POST /data/` reads its body: the same JSON parser (prototype keys dropped),
 * the same schema and limits. The device comes from the topic; a reading may leave `device_id` out,
 * and one naming another device refuses the whole message.
 */
export function readMessage(
  topic: string,
  payload: Buffer,
  prefix: string,
  maxBytes: number,
): DeviceMessage | Refusal {
  const deviceId = topicDevice(topic, prefix);
  const refuse = (kind: RefusalKind, reason: string): Refusal => ({ deviceId, kind, reason });
  if (deviceId === undefined) return refuse('topic', `the topic is not ${prefix}/{device_id}/readings`);
  if (payload.length > maxBytes)
    return refuse('too_large', `the payload has ${payload.length} bytes, more than ${maxBytes}`);
  let body: unknown;
  try {
    body = secureJson.parse(payload.toString('utf8'), undefined, {
      protoAction: 'remove',
      constructorAction: 'remove',
    });
  } catch (error) {
    return refuse('json', `invalid JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(body) && body.length > MAX_BATCH)
    return refuse('too_many', `a message holds at most ${MAX_BATCH} readings; this one has ${body.length}`);
  const items = Array.isArray(body) ? body : [body];
  const other = items.findIndex(
    (item) =>
      item !== null &&
      typeof item === 'object' &&
      'device_id' in item &&
      item.device_id !== undefined &&
      item.device_id !== deviceId,
  );
  if (other >= 0)
    return refuse(
      'other_device',
      `${where(body, other)}device_id is not ${deviceId}, the device of the topic`,
    );
  for (const item of items) {
    if (item !== null && typeof item === 'object' && !Array.isArray(item)) item.device_id = deviceId;
  }
  if (!validateBody(body)) {
    const issues = toValidationIssues(validateBody.errors ?? [], 'body', body);
    return refuse(
      'invalid',
      issues.map((issue) => `${issue.loc.slice(1).join('.')}: ${issue.msg}`).join('; '),
    );
  }
  return { deviceId, readings: body };
}

const where = (body: unknown, index: number) => (Array.isArray(body) ? `${index}.` : '');

/**
 * What the idempotency keys (data/idempotency.ts, scope `mqtt`) name a delivery by. A publisher that
 * sets MQTT 5 correlation data names its message end to end, so its own retries are caught too, and
 * the same correlation data with another payload is refused.
 * Otherwise the broker's packet id names a delivery only within this session, and is reused once
 * acknowledged, so there is one key per packet id (at most 65,535 rows for the session, each written
 * over): a first delivery records its key over the older message's; a redelivery (DUP) with the same
 * payload as the recorded one was stored already, and one with another payload was not (its first
 * delivery never committed), so it is stored and its key written over.
 * QoS 0 messages are never redelivered and have no key. Keys are digests, so that long correlation
 * data or client ids fit the key column.
 */
export interface DeliveryKey {
  key: string;
  /** Whether an earlier delivery with this key may mean "already stored" (false: record it, check nothing). */
  mayRepeat: boolean;
  /** What an earlier record of this key with another payload means: a reuse to refuse, or another message. */
  otherPayload: 'refuse' | 'store';
  /** The SHA-256 of the topic and payload. */
  fingerprint: string;
}

export function deliveryKey(
  packet: IPublishPacket,
  deviceId: number,
  clientId: string,
): DeliveryKey | undefined {
  const digest = (...parts: (string | Buffer)[]) => {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part).update('\n');
    return hash.digest('hex');
  };
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const fingerprint = digest(packet.topic, payload);
  const correlation = packet.properties?.correlationData;
  if (correlation !== undefined && correlation.length > 0)
    return {
      key: `correlation:${digest(String(deviceId), correlation)}`,
      mayRepeat: true,
      otherPayload: 'refuse',
      fingerprint,
    };
  // Only QoS 1 and 2 packets carry an id (Acknowledgements marks QoS 1 ones QoS 0 for mqtt.js).
  if (packet.messageId === undefined) return undefined;
  return {
    key: `delivery:${digest(clientId, String(packet.messageId))}`,
    mayRepeat: packet.dup,
    otherPayload: 'store',
    fingerprint,
  };
}
