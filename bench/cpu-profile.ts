import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** One function of a CPU profile, by the time the CPU spent in it itself (not in what it called). */
export interface ProfileEntry {
  function: string;
  /** Where it is: the file relative to the project (or as V8 named it) and line, 1-based. */
  location: string;
  selfMs: number;
  /** Its share of all sampled time, idle and GC included, in percent. */
  selfPercent: number;
}

export interface ProfileSummary {
  file: string;
  sampledMs: number;
  top: ProfileEntry[];
}

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * The `count` functions with the most self time in a `node --cpu-prof` profile. Functions are keyed by
 * name and place, so one function reached through many call paths is counted once; V8's own entries
 * ((idle), (garbage collector), (program)) stay, as their share says as much as any function's.
 * `lastSeconds` keeps only the samples of the profile's last seconds: the load, not the start-up;
 * `stopSeconds` leaves out that many seconds at the very end, the process's own stop (closing the
 * database checkpoints the WAL, which would otherwise rank among the functions of the load).
 */
export function summarizeProfile(
  path: string,
  root: string,
  {
    count = 10,
    lastSeconds = Number.POSITIVE_INFINITY,
    stopSeconds = 0,
  }: { count?: number; lastSeconds?: number; stopSeconds?: number } = {},
): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const keyOf = new Map<number, { function: string; location: string }>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.startsWith('file://') ? relative(root, new URL(url).pathname) : url;
    keyOf.set(node.id, {
      function: functionName || '(anonymous)',
      location: file ? `${file}:${lineNumber + 1}` : '',
    });
  }
  const selfUs = new Map<string, { function: string; location: string; us: number }>();
  let totalUs = 0;
  const until = profile.endTime - stopSeconds * 1e6;
  const from = until - lastSeconds * 1e6;
  let at = profile.startTime;
  profile.samples.forEach((nodeId, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at < from || at > until) return;
    totalUs += delta;
    const key = keyOf.get(nodeId);
    if (!key) return;
    const name = `${key.function} ${key.location}`;
    const entry = selfUs.get(name) ?? { ...key, us: 0 };
    entry.us += delta;
    selfUs.set(name, entry);
  });
  const top = [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, count)
    .map((entry) => ({
      function: entry.function,
      location: entry.location,
      selfMs: Math.round(entry.us / 1000),
      selfPercent: totalUs > 0 ? Math.round((entry.us / totalUs) * 1000) / 10 : 0,
    }));
  return { file: path, sampledMs: Math.round(totalUs / 1000), top };
}

/**
 * The newest profile of a main thread in `dir`: node names each file CPU.date.time.pid.thread.seq, and
 * writes one per worker thread too (checkpointer, statistics pool), thread 0 being the event loop.
 */
export function mainThreadProfile(dir: string): string | undefined {
  const files = readdirSync(dir)
    .filter((name) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(name))
    .sort();
  const last = files.at(-1);
  return last === undefined ? undefined : join(dir, last);
}

/** The summary as a Markdown table. */
export function profileTable(summary: ProfileSummary): string {
  const lines = [
    '| self ms | self % | function | where |',
    '|---:|---:|---|---|',
    ...summary.top.map(
      (entry) => `| ${entry.selfMs} | ${entry.selfPercent} | \`${entry.function}\` | ${entry.location} |`,
    ),
  ];
  return lines.join('\n');
}

// `tsx bench/cpu-profile.ts FILE.cpuprofile [LAST_SECONDS]`: the top 25 of one profile.
if (process.argv[1]?.endsWith('cpu-profile.ts') && process.argv[2]) {
  const lastSeconds = Number(process.argv[3] ?? Number.POSITIVE_INFINITY);
  console.log(profileTable(summarizeProfile(process.argv[2], process.cwd(), { count: 25, lastSeconds })));
}
