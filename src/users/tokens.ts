import { createHash, randomUUID } from 'node:crypto';
import { type JWTPayload, jwtVerify, SignJWT } from 'jose';
import type { EpochMs } from '../db/tables.js';

const AUDIENCE = 'fastapi-users:auth';
/** How far the clocks of the service and of the original one (same secret) may disagree. */
const CLOCK_SKEW_SECONDS = 60;

export interface VerifiedToken {
  userId: number;
  expiresAt: EpochMs;
  /**
   * What logout puts on the deny list: the SHA-256 of `jti:` and the token's `jti`, or, for a token
   * of the original service (it writes no `jti`), of `sig:` and its signature bytes. Every accepted
   * token is spelled canonically, so one signature has one text and one key.
   */
  denyKey: string;
  /** The digest of the token's text, the key that logouts before issue 11 stored (kept for their lifetime). */
  textDigest: string;
}

export interface TokenService {
  issue(userId: number): Promise<string>;
  /** The token's user, or undefined for any token that is not ours, not HS256, expired or malformed. */
  verify(token: string): Promise<VerifiedToken | undefined>;
}

/**
 * HS256 JWTs as FastAPI Users writes them. The id goes in both `sub` (current FastAPI Users) and
 * `user_id` (10.0.4), and either is read, so tokens survive a migration in both directions.
 */
export function createTokenService(secret: string, lifetimeSeconds: number): TokenService {
  const key = new TextEncoder().encode(secret);
  return {
    issue: (userId) =>
      new SignJWT({ user_id: String(userId) })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(String(userId))
        .setAudience([AUDIENCE])
        .setIssuedAt()
        // Unique per login, so logging one session out never ends another issued in the same second.
        .setJti(randomUUID())
        .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeSeconds)
        .sign(key),

    async verify(token) {
      const segments = token.split('.');
      if (segments.length !== 3 || !segments.every(isCanonicalBase64Url)) return undefined;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ['HS256'],
          audience: AUDIENCE,
          requiredClaims: ['exp'],
        }));
      } catch {
        return undefined;
      }
      if (!claimsAreSane(payload, lifetimeSeconds, Date.now() / 1000)) return undefined;
      const id = payload.sub ?? payload.user_id;
      if (typeof id !== 'string' || !/^\d{1,10}$/.test(id)) return undefined;
      const denyKey =
        typeof payload.jti === 'string'
          ? sha256(`jti:${payload.jti}`)
          : sha256(Buffer.concat([Buffer.from('sig:'), Buffer.from(segments[2] as string, 'base64url')]));
      return {
        userId: Number(id),
        expiresAt: (payload.exp as number) * 1000,
        denyKey,
        textDigest: sha256(token),
      };
    },
  };
}

/**
 * Base64url as RFC 7515 writes it: no padding, and no set bits in the unused low bits of the last
 * character. Other spellings decode to the same bytes (so they verify), which let a logged-out token
 * back in under another text; they are refused instead.
 */
function isCanonicalBase64Url(segment: string): boolean {
  return segment !== '' && Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

/**
 * Numeric claims that are finite, and a token that lives no longer than this service issues them
 * for: `exp` of 1e400 (JSON for infinity) was accepted and never expired.
 */
function claimsAreSane(payload: JWTPayload, lifetimeSeconds: number, now: number): boolean {
  const { exp, iat, nbf } = payload;
  const sane = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value >= 0;
  if (!sane(exp) || (iat !== undefined && !sane(iat)) || (nbf !== undefined && !sane(nbf))) return false;
  const longest = lifetimeSeconds + CLOCK_SKEW_SECONDS;
  if ((exp as number) - now > longest) return false;
  if (iat !== undefined && ((exp as number) - iat > longest || iat > now + CLOCK_SKEW_SECONDS)) return false;
  return true;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
