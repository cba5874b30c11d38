import SQLite from 'better-sqlite3';

export interface BackupProgress {
  totalPages: number;
  remainingPages: number;
}

export interface BackupCheck {
  /** `ok`, or what PRAGMA integrity_check found. */
  integrity: string;
  readings: number;
}

const MAX_STEP = 0x7fffffff;

/**
 * Copies a live SQLite database to `target` with SQLite's online backup API. The copy is a
 * consistent snapshot even while another process writes: SQLite restarts a backup whose source
 * changed between two steps, so the copy goes a hundredth at a time (for the progress bar) until
 * a restart shows that writes are coming in, and then in one step, which holds a read snapshot
 * (WAL mode: writers go on) and cannot be restarted.
 */
export async function backupSqlite(
  source: string,
  target: string,
  onProgress: (progress: BackupProgress) => void,
): Promise<BackupProgress> {
  const connection = new SQLite(source, { fileMustExist: true });
  try {
    let lowest = Number.POSITIVE_INFINITY;
    let restarted = false;
    return await connection.backup(target, {
      progress(progress) {
        onProgress(progress);
        if (progress.remainingPages > lowest) restarted = true;
        lowest = Math.min(lowest, progress.remainingPages);
        return restarted ? MAX_STEP : Math.max(100, Math.ceil(progress.totalPages / 100));
      },
    });
  } finally {
    connection.close();
  }
}

/** Opens a copy read-only and answers what integrity_check says and how many readings it holds. */
export function checkSqliteCopy(path: string): BackupCheck {
  const copy = new SQLite(path, { readonly: true, fileMustExist: true });
  try {
    const rows = copy.pragma('integrity_check') as { integrity_check: string }[];
    const { n } = copy.prepare('select count(*) as n from data').get() as { n: number };
    return { integrity: rows.map((row) => row.integrity_check).join('; '), readings: n };
  } finally {
    copy.close();
  }
}
