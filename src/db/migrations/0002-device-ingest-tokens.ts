import type { Kysely } from 'kysely';

/** Devices may carry a secret for ingest (INGEST_AUTH=token), stored as a SHA-256 digest. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').addColumn('ingest_token_digest', 'varchar(64)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').dropColumn('ingest_token_digest').execute();
}
