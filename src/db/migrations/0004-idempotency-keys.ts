import type { Kysely } from 'kysely';

/**
 * Idempotency keys of writes (the `Idempotency-Key` header of `POST /data/` and `/data/import`, and
 * MQTT deliveries): one row per scope and key, written in the same transaction as the readings it
 * stands for. `scope` is the device's ingest-token digest with INGEST_AUTH=token, `open` otherwise,
 * `mqtt` for the broker. `fingerprint` is a SHA-256 of the request (null while an import is being
 * stored: its body is not read whole yet); `status` and `answer` (JSON) are the answer once known;
 * `progress` is what an import stored so far (JSON), until it ends. Written out here rather than
 * imported, so that this migration never changes with the code.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('idempotency_keys')
    .addColumn('scope', 'varchar(64)', (c) => c.notNull())
    .addColumn('key', 'varchar(255)', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(64)')
    .addColumn('status', 'integer')
    .addColumn('answer', 'text')
    .addColumn('progress', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pkey', ['scope', 'key'])
    .execute();
  // The sweep of expired keys reads them by age.
  await db.schema
    .createIndex('idempotency_keys_created_at')
    .on('idempotency_keys')
    .column('created_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('idempotency_keys').execute();
}
