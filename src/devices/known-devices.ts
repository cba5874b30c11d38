import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { ingestTokenDigest } from './ingest-tokens.js';
import { deviceIngestDigests } from './queries.js';

/**
 * Which device ids exist (and their ingest token digests), remembered once seen, so ingest checks
 * a device without a query per reading. Unknown ids are not remembered (the device may be created
 * a moment later); a device that is deleted or gets a new token is forgotten by its routes, in every
 * process on the same PostgreSQL (device-changes.ts).
 */
/** Lookups overlapped by forgets each time keep nothing after this many: the device's readings are refused until the next. */
const MAX_LOOKUPS = 5;

export class KnownDevices {
  readonly #digests = new Map<number, string | null>();
  /** Counts forgets: a lookup that overlapped one may hold a digest read before the change. */
  #forgets = 0;

  /** `announce` tells the other processes on the same database to forget a device (device-changes.ts). */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly announce: (id: number) => Promise<void>,
  ) {}

  /** Whether the device is remembered: it exists, and `missing` would answer it at once. */
  has(id: number): boolean {
    return this.#digests.has(id);
  }

  /** The ids among `ids` that name no device. */
  async missing(ids: Iterable<number>): Promise<number[]> {
    const unique = [...new Set(ids)];
    const unknown = unique.filter((id) => !this.#digests.has(id));
    if (unknown.length === 0) return [];
    // A token rotated (or a device deleted) while the lookup ran may have been read before the change:
    // then the lookup runs again (it starts after the change), so an old digest is never cached back.
    // A process hears its own announcements too, so one overlapping forget is common on PostgreSQL.
    let rows: Awaited<ReturnType<typeof deviceIngestDigests>> = [];
    for (let attempt = 0; attempt < MAX_LOOKUPS; attempt++) {
      const forgets = this.#forgets;
      rows = await deviceIngestDigests(this.db, unknown);
      if (forgets !== this.#forgets) continue;
      for (const row of rows) this.#digests.set(row.id, row.ingest_token_digest);
      break;
    }
    const found = new Set(rows.map((row) => row.id));
    return unknown.filter((id) => !found.has(id));
  }

  /** The (existing) devices among `ids` whose ingest token is not `token`. */
  refusing(ids: Iterable<number>, token: string | undefined): number[] {
    const digest = token === undefined ? undefined : ingestTokenDigest(token);
    return [...new Set(ids)].filter((id) => {
      const expected = this.#digests.get(id);
      return expected === null || expected === undefined || expected !== digest;
    });
  }

  /** After a device is deleted or gets a new token: here, and in every other process. */
  async forget(id: number): Promise<void> {
    this.forgetHere(id);
    await this.announce(id);
  }

  /** Another process announced a change to the device. */
  forgetHere(id: number): void {
    this.#forgets++;
    this.#digests.delete(id);
  }

  forgetAll(): void {
    this.#forgets++;
    this.#digests.clear();
  }
}
