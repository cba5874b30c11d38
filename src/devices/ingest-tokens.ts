import { createHash, randomBytes } from 'node:crypto';

/** A device's ingest secret: shown once, kept only as its SHA-256 digest (it is random, so no salt). */
export function newIngestToken(): { token: string; digest: string } {
  const token = `dev_${randomBytes(32).toString('base64url')}`;
  return { token, digest: ingestTokenDigest(token) };
}

export const ingestTokenDigest = (token: string) => createHash('sha256').update(token).digest('hex');

export const INGEST_TOKEN_HEADER = 'x-device-token';
