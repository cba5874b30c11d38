import type { Selectable } from 'kysely';
import { type ReadingRow, readingStore } from '../data/reading-store.js';
import type { OpenedDatabase } from '../db/database.js';
import { moveIdSequencePast } from '../db/dialect.js';
import type { DevicesTable, EpochMs, UsersTable } from '../db/tables.js';
import { LocalTimes } from './local-time.js';
import {
  countReadingsInIdRange,
  devicesById,
  insertWithIds,
  readingsInIdRange,
  userIdsExisting,
  usersByIdOrEmail,
} from './queries.js';
import type { OriginalReading, OriginalSource } from './source.js';

export interface ImportOriginalOptions {
  /** The IANA zone the original's server ran in (`UTC` when its times are UTC already). */
  zone: string;
  /** Readings per transaction. */
  chunkSize: number;
  /** Check and count, write nothing. */
  dryRun: boolean;
  onProgress: (phase: 'checking' | 'importing', done: number, total: number) => void;
}

export type SkipReason = 'orphan' | 'invalid_value' | 'invalid_time';

export interface ImportOriginalReport {
  source: { revision: string | undefined; users: number; devices: number; readings: number };
  zone: string;
  users: { imported: number; unchanged: number };
  devices: {
    imported: number;
    unchanged: number;
    /** Devices whose owner does not exist (the original did not enforce the key): imported without one. */
    ownerMissing: number[];
    /** Names over 50 characters (the original did not enforce the limit on SQLite), cut to 50. */
    nameCut: number[];
  };
  readings: {
    imported: number;
    unchanged: number;
    skipped: Record<SkipReason, number>;
    /** The first skipped readings, with why. */
    skippedExamples: { id: number; reason: SkipReason }[];
  };
  /** Local times that happened twice (earlier instant taken) or never (moved forward by the gap). */
  times: { ambiguous: number; nonexistent: number };
  /** Rows of the target that differ from the original's under the same id or e-mail (the first 20). */
  conflicts: string[];
  /** Conflicts beyond those listed. */
  moreConflicts: number;
  dryRun: boolean;
}

const NAME_LIMIT = 50;
const LISTED = 20;

/**
 * Moves the original service's users, devices and readings, with their ids, into this service's
 * database. Everything is checked first; a target holding a different row under an imported id
 * (or an imported e-mail under another id) is refused before anything is written. Users and devices
 * go in one transaction, readings in one transaction per chunk through the service's own insert
 * (which merges the per-minute rollups); rows already there as imported are left alone, so a second
 * run changes nothing.
 */
export async function importOriginal(
  source: OriginalSource,
  { db, engine }: OpenedDatabase,
  options: ImportOriginalOptions,
): Promise<ImportOriginalReport> {
  const times = new LocalTimes(options.zone);
  const report = emptyReport(source, times.zone, options.dryRun);
  const conflict = (text: string) => {
    if (report.conflicts.length < LISTED) report.conflicts.push(text);
    else report.moreConflicts++;
  };

  const sourceUsers = source.users();
  const knownUsers = await usersByIdOrEmail(
    db,
    sourceUsers.map((u) => u.id),
    sourceUsers.map((u) => u.email),
  );
  const newUsers: Selectable<UsersTable>[] = [];
  const emails = new Map<string, number>();
  for (const user of sourceUsers) {
    const email = user.email.toLowerCase();
    const twin = emails.get(email);
    if (twin !== undefined)
      conflict(`user ${user.id}: the original also holds ${user.email} as user ${twin}`);
    emails.set(email, user.id);
    const sameId = knownUsers.find((known) => known.id === user.id);
    const sameEmail = knownUsers.find((known) => known.email.toLowerCase() === email);
    if (sameId && sameId.email.toLowerCase() !== email) {
      conflict(`user ${user.id}: the target holds ${sameId.email} under this id, the original ${user.email}`);
    } else if (!sameId && sameEmail) {
      conflict(`user ${user.id} (${user.email}): the target holds this e-mail as user ${sameEmail.id}`);
    } else if (sameId) {
      // Same account: its password hash (upgraded at a login) and flags are the target's now.
      report.users.unchanged++;
    } else {
      newUsers.push({
        id: user.id,
        email: user.email,
        hashed_password: user.hashed_password,
        is_active: Boolean(user.is_active),
        is_superuser: Boolean(user.is_superuser),
        is_verified: Boolean(user.is_verified),
      });
    }
  }

  const sourceDevices = source.devices();
  const ownerIds = [...new Set(sourceDevices.flatMap((d) => (d.user_id === null ? [] : [d.user_id])))];
  const owners = new Set([...sourceUsers.map((u) => u.id), ...(await userIdsExisting(db, ownerIds))]);
  const knownDevices = new Map(
    (
      await devicesById(
        db,
        sourceDevices.map((d) => d.id),
      )
    ).map((d) => [d.id, d]),
  );
  const firstReadings = source.firstReadingTimes();
  const importedAt = Date.now();
  const newDevices: Selectable<DevicesTable>[] = [];
  for (const device of sourceDevices) {
    let owner = device.user_id;
    if (owner !== null && !owners.has(owner)) {
      owner = null;
      report.devices.ownerMissing.push(device.id);
    }
    let name = device.name === null ? null : String(device.name);
    if (name !== null && [...name].length > NAME_LIMIT) {
      name = [...name].slice(0, NAME_LIMIT).join('');
      report.devices.nameCut.push(device.id);
    }
    const known = knownDevices.get(device.id);
    if (known && (known.name !== name || known.user_id !== owner)) {
      conflict(
        `device ${device.id}: the target holds ${JSON.stringify({ name: known.name, user_id: known.user_id })}, ` +
          `the original ${JSON.stringify({ name, user_id: owner })}`,
      );
    } else if (known) {
      report.devices.unchanged++;
    } else {
      // The original keeps no creation time: a device was made before its first reading.
      const first = firstReadings.get(device.id);
      const createdAt = (first === undefined ? undefined : times.toUtc(first)?.at) ?? importedAt;
      newDevices.push({
        id: device.id,
        name,
        user_id: owner,
        created_at: createdAt,
        ingest_token_digest: null,
      });
    }
  }

  const deviceIds = new Set(sourceDevices.map((d) => d.id));
  const total = report.source.readings;
  const store = readingStore(db, engine);
  /** One pass over the readings: classifies each, and stores the new ones when `write` is set. */
  const readingsPass = async (write: boolean) => {
    const counts = emptyReadingCounts();
    const timeCounts = { ambiguous: 0, nonexistent: 0 };
    let done = 0;
    for (const chunk of source.readingChunks(options.chunkSize)) {
      const first = (chunk[0] as OriginalReading).id;
      const last = (chunk.at(-1) as OriginalReading).id;
      const stored = new Map((await readingsInIdRange(db, first, last)).map((row) => [row.id, row]));
      const rows: ReadingRow[] = [];
      const ids: number[] = [];
      for (const reading of chunk) {
        const row = toRow(reading, deviceIds, times);
        if (typeof row === 'string') {
          counts.skipped[row]++;
          if (counts.skippedExamples.length < LISTED)
            counts.skippedExamples.push({ id: reading.id, reason: row });
          continue;
        }
        if (row.resolution !== 'exact') timeCounts[row.resolution]++;
        const there = stored.get(reading.id);
        if (!there) {
          rows.push(row.row);
          ids.push(reading.id);
        } else if (sameReading(there, row.row)) {
          counts.unchanged++;
        } else {
          conflict(
            `reading ${reading.id}: the target holds ${describe(there)}, the original ${describe(row.row)}`,
          );
        }
      }
      if (write && report.conflicts.length === 0) await store.insert(rows, ids);
      counts.imported += rows.length;
      done += chunk.length;
      options.onProgress(write ? 'importing' : 'checking', done, total);
    }
    return { counts, timeCounts };
  };

  const overlapping =
    total > 0 && (await countReadingsInIdRange(db, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)) > 0;
  if (report.conflicts.length === 0 && (overlapping || options.dryRun)) {
    const checked = await readingsPass(false);
    if (report.conflicts.length > 0 || options.dryRun) {
      report.users.imported = newUsers.length;
      report.devices.imported = newDevices.length;
      return { ...report, readings: checked.counts, times: checked.timeCounts };
    }
  }
  if (report.conflicts.length > 0) return report;

  await db.transaction().execute(async (trx) => {
    await insertWithIds(trx, 'users', newUsers);
    await insertWithIds(trx, 'devices', newDevices);
  });
  report.users.imported = newUsers.length;
  report.devices.imported = newDevices.length;
  const written = await readingsPass(true);
  for (const table of ['users', 'devices', 'data'] as const) await moveIdSequencePast(db, engine, table);
  return { ...report, readings: written.counts, times: written.timeCounts };
}

/** A reading of the original as a row to store, or why it cannot be one. */
function toRow(
  reading: OriginalReading,
  devices: Set<number>,
  times: LocalTimes,
): { row: ReadingRow; resolution: 'exact' | 'ambiguous' | 'nonexistent' } | SkipReason {
  if (reading.device_id === null || !devices.has(reading.device_id)) return 'orphan';
  const { x, y, z } = reading;
  if (![x, y, z].every((v) => typeof v === 'number' && Number.isFinite(v))) return 'invalid_value';
  const time = typeof reading.create_date === 'string' ? times.toUtc(reading.create_date) : undefined;
  if (!time) return 'invalid_time';
  return {
    row: {
      device_id: reading.device_id,
      x: x as number,
      y: y as number,
      z: z as number,
      created_at: time.at,
    },
    resolution: time.resolution,
  };
}

function sameReading(stored: ReadingRow, incoming: ReadingRow): boolean {
  return (
    Number(stored.device_id) === incoming.device_id &&
    stored.x === incoming.x &&
    stored.y === incoming.y &&
    stored.z === incoming.z &&
    Number(stored.created_at) === incoming.created_at
  );
}

const describe = (row: ReadingRow) =>
  `device ${row.device_id} (${row.x}, ${row.y}, ${row.z}) at ${new Date(row.created_at as EpochMs).toISOString()}`;

function emptyReport(source: OriginalSource, zone: string, dryRun: boolean): ImportOriginalReport {
  return {
    source: {
      revision: source.revision(),
      users: source.users().length,
      devices: source.devices().length,
      readings: source.readingCount(),
    },
    zone,
    users: { imported: 0, unchanged: 0 },
    devices: { imported: 0, unchanged: 0, ownerMissing: [], nameCut: [] },
    readings: emptyReadingCounts(),
    times: { ambiguous: 0, nonexistent: 0 },
    conflicts: [],
    moreConflicts: 0,
    dryRun,
  };
}

function emptyReadingCounts(): ImportOriginalReport['readings'] {
  return {
    imported: 0,
    unchanged: 0,
    skipped: { orphan: 0, invalid_value: 0, invalid_time: 0 },
    skippedExamples: [],
  };
}
