import type { ProfileSummary } from './cpu-profile.js';
import type { HeavyLoad, StallRuns } from './heavy.js';
import type { MqttFigure, MqttResult } from './mqtt.js';
import type { Rate } from './readings.js';
import type { WrkResult } from './wrk.js';

/** An HTTP scenario: measured, or not applicable (e.g. the server refused arrays with a 422). */
export type HttpFigure = { status: 'measured'; wrk: WrkResult } | { status: 'n/a'; reason: string };

/** API requests and the same SQL straight through the driver, interleaved, with their medians. */
export interface Scenario {
  /** Path and query of the request. */
  request: string;
  requests: number;
  apiMedianMs: number;
  apiRunsMs: number[];
  rawMedianMs: number;
  rawRunsMs: number[];
  rawSql: string;
  rawParams: unknown[];
  apiToRaw: number;
  /** Whether the API and the raw SQL answered the same numbers (counts must; see run.ts). */
  answersAgree: boolean;
  apiAnswer: unknown;
  rawAnswer: unknown;
}

/** The large-dataset scenarios, in a fresh database and server of their own. */
export type LargeResult =
  | { status: 'skipped'; reason: string }
  | {
      status: 'measured';
      instance: string;
      rows: number;
      devices: number;
      days: number;
      firstReading: string;
      endOfData: string;
      load: Rate & { method: string };
      dataBytes: number;
      /** One device, one UTC day, every statistic of x. */
      window: Scenario & { readings: number; plan: string[] };
      /** One device, 30 days in hourly buckets. */
      series: Scenario & { buckets: number; bucketsWithReadings: number; plan: string[] };
      /** group_by=device over the last hour (start_date only), every device. */
      groupWindow: Scenario & { readings: number; plan: string[] };
    };

export interface EngineResult {
  engine: 'sqlite' | 'postgres';
  rowsLoaded: number;
  bulkLoad: Rate;
  singlePost: { connections10: HttpFigure; connections100: HttpFigure };
  batchPost: HttpFigure & { readingsPerRequest: number; readingsPerSecond: number | null };
  batchPost100: HttpFigure & { readingsPerRequest: number; readingsPerSecond: number | null };
  /** The seed's Locust mix (bench/mixed.ts): 8 readings, 1 statistics, 1 device list, 10 users. */
  mixed: HttpFigure;
  /** The top functions by self time of a profiled single-reading run (also in bench/ingest-profile.md). */
  profile: ProfileSummary;
  statistics: Omit<Scenario, 'request' | 'rawParams' | 'apiToRaw' | 'answersAgree'>;
  /** attr=x,y,z with percentiles over the same readings as `statistics`, and its server's peak RSS. */
  percentiles: Scenario & { serverPeakRssBytes: number };
  /** Single-reading ingest, several runs of 10 connections, watched for stalls. */
  stalls: StallRuns;
  /** Ingest and /health idle, then while heavy exact statistics run. */
  heavyLoad: HeavyLoad;
  large: LargeResult;
  /** One device publishing at QoS 1 (bench/mqtt.ts), right after the HTTP ingest runs. */
  mqtt: ({ status: 'measured' } & MqttResult) | { status: 'skipped'; reason: string };
  serverMemory: {
    peakRssBytes: number;
    samples: number;
    vmHwmBytes: number | null;
    vmHwmCoversIngestOnly: boolean;
  };
  ceilings: {
    singleRowTransactions: Rate;
    batched: Array<{ method: string } & Rate>;
    fastestBatched: { method: string } & Rate;
  };
  ratios: {
    single10ToBare: number | null;
    single100ToBare: number | null;
    single10ToRawSingleRowTransactions: number | null;
    batchToRawBatched: number | null;
    batch100ToRawBatched: number | null;
    statisticsApiToRaw: number;
  };
}

export interface BareResult {
  connections10: WrkResult;
  connections100: WrkResult;
}

export interface Goal {
  text: string;
  met: boolean | null;
}

export interface TableRow {
  engine: string;
  figure: string;
  api: string;
  ceiling: string;
  ratio: string;
  goal: string;
}

/** MQTT against HTTP ingest of the same run: single readings, then batches. */
function mqttRows(result: EngineResult): TableRow[] {
  const { engine, mqtt } = result;
  if (mqtt.status === 'skipped')
    return [
      { engine, figure: 'MQTT ingest', api: `skipped (${mqtt.reason})`, ceiling: '', ratio: '', goal: '' },
    ];
  const single10 = result.singlePost.connections10;
  const httpSingle = single10.status === 'measured' ? single10.wrk.requestsPerSecond : null;
  const httpBatch = result.batchPost.readingsPerSecond;
  const cell = (figure: MqttFigure) =>
    `${int(figure.readingsPerSecond)} readings/s, publish to commit p50 ${ms(figure.latencyMs.p50)} ms, ` +
    `p99 ${ms(figure.latencyMs.p99)} ms`;
  const against = (value: number, http: number | null) => (http === null ? null : value / http);
  return [
    {
      engine,
      figure: 'MQTT one reading a message, QoS 1, one device',
      api: cell(mqtt.single),
      ceiling:
        httpSingle === null ? 'n/a' : `POST /data/ one reading, 10 conn: ${int(httpSingle)} readings/s`,
      ratio: ratio(against(mqtt.single.readingsPerSecond, httpSingle)),
      goal: '',
    },
    {
      engine,
      figure: `MQTT ${int(mqtt.batch.readingsPerMessage)}-reading messages, QoS 1, one device`,
      api: cell(mqtt.batch),
      ceiling: httpBatch === null ? 'n/a' : `POST /data/ batches, 10 conn: ${int(httpBatch)} readings/s`,
      ratio: ratio(against(mqtt.batch.readingsPerSecond, httpBatch)),
      goal: '',
    },
  ];
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(0)} MB`;
const ratio = (value: number | null) => (value === null ? 'n/a' : value.toFixed(2));
const mark = (goal: Goal) => `${goal.text}${goal.met === null ? '' : goal.met ? ' (met)' : ' (missed)'}`;

function httpCell(figure: HttpFigure): string {
  if (figure.status === 'n/a') return `n/a (${figure.reason})`;
  const { wrk } = figure;
  const failures = wrk.non2xx + wrk.socketErrors.connect + wrk.socketErrors.read + wrk.socketErrors.timeout;
  const warn = failures > 0 ? `, ${int(failures)} failed!` : '';
  return `${int(wrk.requestsPerSecond)} req/s, p50 ${ms(wrk.latencyMs.p50)} ms, p99 ${ms(wrk.latencyMs.p99)} ms${warn}`;
}

const bareCell = (wrk: WrkResult) =>
  `bare Fastify ${int(wrk.requestsPerSecond)} req/s (p99 ${ms(wrk.latencyMs.p99)} ms)`;

/** The table rows of one engine, with the goals (the SQLite ones; PostgreSQL has its own batch goal). */
export function engineRows(result: EngineResult, bare: BareResult): TableRow[] {
  const { engine, ratios } = result;
  const rows: TableRow[] = [];
  const single10 = result.singlePost.connections10;
  const p99 = single10.status === 'measured' ? single10.wrk.latencyMs.p99 : null;
  rows.push({
    engine,
    figure: 'POST /data/ one reading, 10 connections',
    api: httpCell(single10),
    ceiling: bareCell(bare.connections10),
    ratio: ratio(ratios.single10ToBare),
    goal:
      engine === 'sqlite'
        ? mark({
            text: '>= 0.50, p99 <= 5 ms',
            met:
              ratios.single10ToBare === null || p99 === null
                ? null
                : ratios.single10ToBare >= 0.5 && p99 <= 5,
          })
        : '',
  });
  rows.push({
    engine,
    figure: '  same, against raw one row per transaction',
    api: '',
    ceiling: `raw driver ${int(result.ceilings.singleRowTransactions.rowsPerSecond)} rows/s`,
    ratio: ratio(ratios.single10ToRawSingleRowTransactions),
    goal: '',
  });
  rows.push({
    engine,
    figure: 'POST /data/ one reading, 100 connections',
    api: httpCell(result.singlePost.connections100),
    ceiling: bareCell(bare.connections100),
    ratio: ratio(ratios.single100ToBare),
    goal: '',
  });
  const best = result.ceilings.fastestBatched;
  const batchRow = (batch: EngineResult['batchPost'], connections: number, batchRatio: number | null) => {
    const api =
      batch.status === 'n/a'
        ? `n/a (${batch.reason})`
        : `${int(batch.readingsPerSecond ?? 0)} readings/s (${httpCell(batch)})`;
    const goal: Goal =
      engine === 'sqlite'
        ? {
            text: connections === 10 ? '>= 250,000/s and >= 0.60' : '>= 0.60',
            met:
              batchRatio === null
                ? null
                : batchRatio >= 0.6 && (connections !== 10 || (batch.readingsPerSecond ?? 0) >= 250_000),
          }
        : { text: '>= 0.80', met: batchRatio === null ? null : batchRatio >= 0.8 };
    rows.push({
      engine,
      figure: `POST /data/ ${int(batch.readingsPerRequest)}-reading batches, ${connections} connections`,
      api,
      ceiling: `raw ${int(best.rowsPerSecond)} rows/s (${best.method})`,
      ratio: ratio(batchRatio),
      goal: mark(goal),
    });
  };
  batchRow(result.batchPost, 10, ratios.batchToRawBatched);
  batchRow(result.batchPost100, 100, ratios.batch100ToRawBatched);
  const mixed = result.mixed;
  rows.push({
    engine,
    figure: 'mixed 8:1:1 (readings, statistics of the own device, device list), 10 users',
    api:
      mixed.status === 'measured'
        ? `${httpCell(mixed)}, p95 ${ms(mixed.wrk.latencyMs.p95)} ms`
        : `n/a (${mixed.reason})`,
    ceiling: '',
    ratio: '',
    goal:
      engine === 'sqlite' && mixed.status === 'measured'
        ? mark({
            text: '>= 3,000 req/s, p95 <= 10 ms',
            met: mixed.wrk.requestsPerSecond >= 3000 && mixed.wrk.latencyMs.p95 <= 10,
          })
        : '',
  });
  rows.push(...mqttRows(result));
  const stats = result.statistics;
  rows.push({
    engine,
    figure: `GET /analyze_statistics/ over ${int(result.rowsLoaded)} readings, median of ${stats.requests}`,
    api: `${ms(stats.apiMedianMs)} ms`,
    ceiling: `raw SQL ${ms(stats.rawMedianMs)} ms`,
    ratio: `${ratios.statisticsApiToRaw.toFixed(2)}x`,
    goal: mark({ text: '<= 400 ms', met: stats.apiMedianMs <= 400 }),
  });
  const p = result.percentiles;
  rows.push({
    engine,
    figure: `GET ${p.request} over ${int(result.rowsLoaded)} readings, median of ${p.requests}`,
    api: `${ms(p.apiMedianMs)} ms`,
    ceiling: `raw SQL ${ms(p.rawMedianMs)} ms`,
    ratio: `${p.apiToRaw.toFixed(2)}x`,
    goal: mark({ text: '<= 1.5 s', met: p.apiMedianMs <= 1500 }),
  });
  rows.push({
    engine,
    figure: '  its server, peak RSS',
    api: mb(p.serverPeakRssBytes),
    ceiling: '',
    ratio: '',
    goal: mark({ text: '<= 350 MB', met: p.serverPeakRssBytes <= 350 * 1_048_576 }),
  });
  rows.push(...heavyRows(engine, result.stalls, result.heavyLoad));
  rows.push(...largeRows(engine, result.large));
  const memory = result.serverMemory;
  const hwm =
    memory.vmHwmBytes === null
      ? ''
      : ` (VmHWM ${mb(memory.vmHwmBytes)}${memory.vmHwmCoversIngestOnly ? '' : ', whole life'})`;
  rows.push({
    engine,
    figure: 'server peak RSS through the ingest runs',
    api: `${mb(memory.peakRssBytes)}${hwm}`,
    ceiling: '',
    ratio: '',
    goal: engine === 'sqlite' ? mark({ text: '<= 200 MB', met: memory.peakRssBytes <= 200 * 1_048_576 }) : '',
  });
  return rows;
}

function heavyRows(engine: string, stalls: StallRuns, heavy: HeavyLoad): TableRow[] {
  const { idle, loaded } = heavy;
  return [
    {
      engine,
      figure: `POST /data/ one reading, 10 connections, ${stalls.runs.length} runs of ${Math.round(stalls.runs[0]?.seconds ?? 0)} s`,
      api: stalls.runs.map((run) => `p99 ${ms(run.latencyMs.p99)}/max ${ms(run.latencyMs.max)}`).join(', '),
      ceiling: '',
      ratio: '',
      goal: mark({
        text: 'every run p99 <= 10 ms, max <= 50 ms',
        met: stalls.worstP99Ms <= 10 && stalls.worstMaxMs <= 50,
      }),
    },
    {
      engine,
      figure: `/health (2 connections) while ${heavy.heavyLoops} clients repeat ${heavy.heavyRequest}`,
      api: `p99 ${ms(loaded.health.latencyMs.p99)} ms (${heavy.heavyAnswered} heavy answers, median ${ms(heavy.heavyMedianMs)} ms)`,
      ceiling: `idle p99 ${ms(idle.health.latencyMs.p99)} ms`,
      ratio: '',
      goal: mark({ text: 'p99 <= 50 ms', met: loaded.health.latencyMs.p99 <= 50 }),
    },
    {
      engine,
      figure: '  single-reading ingest (10 connections) meanwhile',
      api: `${int(loaded.ingest.requestsPerSecond)} req/s`,
      ceiling: `idle ${int(idle.ingest.requestsPerSecond)} req/s`,
      ratio: ratio(heavy.ingestLoadedToIdle),
      goal: mark({ text: '>= 0.70', met: heavy.ingestLoadedToIdle >= 0.7 }),
    },
  ];
}

function largeRows(engine: string, large: LargeResult): TableRow[] {
  if (large.status === 'skipped') {
    return [
      {
        engine,
        figure: 'large dataset scenarios',
        api: `skipped: ${large.reason}`,
        ceiling: '',
        ratio: '',
        goal: '',
      },
    ];
  }
  const millions = large.rows >= 1_000_000 ? `${+(large.rows / 1_000_000).toFixed(1)}M` : int(large.rows);
  const { window, series, groupWindow } = large;
  return [
    {
      engine,
      figure: `large: ${int(large.rows)} readings, ${large.devices} devices, ${large.days} days (${large.instance})`,
      api: `loaded in ${large.load.seconds.toFixed(1)} s, ${int(large.load.rowsPerSecond)} rows/s, ${mb(large.dataBytes)}`,
      ceiling: large.load.method,
      ratio: '',
      goal: '',
    },
    {
      engine,
      figure: `  one device, one day (${int(window.readings)} readings) in the ${millions}, median of ${window.requests}`,
      api: `${ms(window.apiMedianMs)} ms`,
      ceiling: `raw SQL ${ms(window.rawMedianMs)} ms`,
      ratio: `${window.apiToRaw.toFixed(2)}x`,
      goal: mark({ text: '<= 20 ms', met: window.apiMedianMs <= 20 }),
    },
    {
      engine,
      figure: `  one device, 30 days hourly (${int(series.buckets)} buckets) in the ${millions}, median of ${series.requests}`,
      api: `${ms(series.apiMedianMs)} ms`,
      ceiling: `raw SQL ${ms(series.rawMedianMs)} ms`,
      ratio: `${series.apiToRaw.toFixed(2)}x`,
      goal: engine === 'sqlite' ? mark({ text: '<= 300 ms', met: series.apiMedianMs <= 300 }) : '',
    },
    {
      engine,
      figure: `  group_by=device, the last hour (${int(groupWindow.readings)} readings) in the ${millions}, median of ${groupWindow.requests}`,
      api: `${ms(groupWindow.apiMedianMs)} ms`,
      ceiling: `raw SQL ${ms(groupWindow.rawMedianMs)} ms`,
      ratio: `${groupWindow.apiToRaw.toFixed(2)}x`,
      goal: mark({ text: '<= 50 ms', met: groupWindow.apiMedianMs <= 50 }),
    },
  ];
}

/** A Markdown table (pastes straight into the README), padded so it also reads well in a terminal. */
export function renderTable(rows: TableRow[]): string {
  const headers: TableRow = {
    engine: 'engine',
    figure: 'figure',
    api: 'API',
    ceiling: 'ceiling (same run)',
    ratio: 'ratio',
    goal: 'goal',
  };
  const keys = Object.keys(headers) as Array<keyof TableRow>;
  const widths = keys.map((key) => Math.max(...[headers, ...rows].map((row) => row[key].length)));
  const line = (row: TableRow) => `| ${keys.map((key, i) => row[key].padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}
