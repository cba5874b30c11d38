import type { FastifyBaseLogger } from 'fastify';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import type { Engine } from '../db/dialect.js';
import type { Database } from '../db/tables.js';
import type { KnownDevices } from './known-devices.js';

/**
 * Several processes on one PostgreSQL each remember devices (KnownDevices). A deletion or a new ingest
 * token in one is announced with NOTIFY on this channel, and every process forgets that device when
 * the notification arrives (a round trip: well within a second). SQLite has one process: nothing to tell.
 */
const CHANNEL = 'statistics_device_changes';

/** The announcement, from the process that made the change (after its commit). */
export function announceDeviceChange(db: Kysely<Database>, engine: Engine) {
  return async (id: number): Promise<void> => {
    if (engine === 'postgres') await sql`select pg_notify(${CHANNEL}, ${String(id)})`.execute(db);
  };
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 10_000;

/**
 * LISTEN on a connection of its own (a pooled one would be returned and lose it). A lost connection is
 * opened again (the wait doubles up to 10 s), and everything remembered is forgotten then: what was
 * announced meanwhile was missed.
 */
export function listenForDeviceChanges(url: string, devices: KnownDevices, log: FastifyBaseLogger) {
  let closed = false;
  let current: pg.Client | undefined;
  let retryMs = FIRST_RETRY_MS;

  const connect = async () => {
    const client = new pg.Client({ connectionString: url });
    let lost = false;
    const reconnect = () => {
      if (lost) return;
      lost = true;
      current = undefined;
      client.end().catch(() => {});
      if (closed) return;
      setTimeout(connect, retryMs).unref();
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    };
    client.on('error', (error) => {
      log.warn({ err: error }, 'device change notifications lost: reconnecting');
      reconnect();
    });
    client.on('end', reconnect);
    client.on('notification', (message) => devices.forgetHere(Number(message.payload)));
    try {
      await client.connect();
      await client.query(`listen ${CHANNEL}`);
    } catch {
      reconnect();
      return;
    }
    if (closed) {
      lost = true;
      await client.end().catch(() => {});
      return;
    }
    current = client;
    retryMs = FIRST_RETRY_MS;
    devices.forgetAll();
  };
  void connect();
  return {
    async close() {
      closed = true;
      await current?.end().catch(() => {});
    },
  };
}
