/**
 * The framework's own ceiling: Fastify 5 with nothing but a route that parses the JSON body and
 * answers a constant JSON reading (the shape POST /data/ answers). No logger, no schema, no database.
 * Started by run.ts as its own process; prints {"port": N} once listening.
 */
import Fastify from 'fastify';

const ANSWER = { id: 1, device_id: 1, x: 1.5, y: 2.5, z: 3.5, created_at: '2026-01-01T00:00:00.000Z' };

const app = Fastify({ logger: false });
app.post('/data/', async () => ANSWER);
app.get('/health', async () => ({ status: 'ok' }));

const stop = () => {
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
console.log(JSON.stringify({ port: Number(new URL(address).port) }));
