import pg from 'pg';

/** Runs one statement on the server of `adminUrl` (BENCH_DATABASE_URL): making and dropping bench databases. */
export async function adminQuery(adminUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
