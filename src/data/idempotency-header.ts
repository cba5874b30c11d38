import type { FastifyRequest } from 'fastify';
import { ingestTokenDigest } from '../devices/ingest-tokens.js';
import type { KeyName } from './idempotency.js';

/**
 * The request's `Idempotency-Key` (validated by the route's headers schema) and whose it is: with
 * INGEST_AUTH=token, the device token's (its digest), so that devices never share keys; otherwise
 * everyone's (`open`): clients must then make keys no one else makes (UUIDs). A bearer token does not
 * scope keys, as writes of readings do not take one.
 */
export function idempotencyKeyOf(
  request: FastifyRequest,
  token: string | undefined,
  ingestAuth: 'open' | 'token',
): KeyName | undefined {
  const key = request.headers['idempotency-key'];
  if (typeof key !== 'string') return undefined;
  return { scope: ingestAuth === 'token' && token !== undefined ? ingestTokenDigest(token) : 'open', key };
}
