import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/** The shared Redis of this machine (`.ci/run` starts it when it is not running). */
export const SHARED_REDIS = 'redis://127.0.0.1:6379';

/** Why the Redis suites cannot run here, or false when the shared Redis accepts connections. */
export async function redisSkipReason(): Promise<string | false> {
  const listening = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: 6379 }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  return listening ? false : 'no Redis on 127.0.0.1:6379: start it (redis-server --daemonize yes)';
}

/** A REDIS_KEY_PREFIX no other run (parallel, or earlier) uses, so that no count carries over. */
export function uniqueRedisPrefix(): string {
  return `statistics-test:${process.pid}-${randomBytes(4).toString('hex')}:`;
}
