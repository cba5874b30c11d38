import { createHash, randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { EpochMs } from '../db/tables.js';

const AUDIENCE = 'fastapi-users:auth';

export interface VerifiedToken {
  userId: number;
  expiresAt: EpochMs;
  digest: string;
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
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms: ['HS256'],
          audience: AUDIENCE,
          requiredClaims: ['exp'],
        });
        const id = payload.sub ?? payload.user_id;
        if (typeof id !== 'string' || !/^\d{1,10}$/.test(id)) return undefined;
        return { userId: Number(id), expiresAt: (payload.exp as number) * 1000, digest: tokenDigest(token) };
      } catch {
        return undefined;
      }
    },
  };
}

export const tokenDigest = (token: string) => createHash('sha256').update(token).digest('hex');
