import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { existingDeviceIds } from './queries.js';

/**
 * Which device ids exist, remembered once seen, so ingest checks a device without a query per
 * reading. Unknown ids are not remembered (the device may be created a moment later).
 */
export class KnownDevices {
  readonly #known = new Set<number>();

  constructor(private readonly db: Kysely<Database>) {}

  /** The ids among `ids` that name no device. */
  async missing(ids: Iterable<number>): Promise<number[]> {
    const unknown = [...new Set(ids)].filter((id) => !this.#known.has(id));
    if (unknown.length === 0) return [];
    for (const id of await existingDeviceIds(this.db, unknown)) this.#known.add(id);
    return unknown.filter((id) => !this.#known.has(id));
  }

  forget(id: number): void {
    this.#known.delete(id);
  }
}
