import type uPlot from 'uplot';
import { AXES, type Axis, type AxisStatistics, answer, api, bucketValues, byAxis, exportUrl } from './api';
import { COLORS, chooseBucket, type SeriesByAxis, seriesIndex, toColumns } from './chart';
import { formatDateTime, fromLocalInput, h, message, query, timeZone, toLocalInput } from './dom';
import { type Accuracy, APPROX_FROM_READINGS, PERCENTILES, statisticsPanel } from './stats-table';

const RANGES: [string, string, number][] = [
  ['1h', 'Last hour', 3600_000],
  ['1d', 'Last day', 86400_000],
  ['7d', 'Last week', 7 * 86400_000],
  ['30d', 'Last 30 days', 30 * 86400_000],
];

const REFRESH_MS = 15_000;

interface Range {
  key: string;
  from: number;
  to: number;
}

function resolveRange(params: URLSearchParams): Range {
  const key = params.get('range') ?? '1d';
  if (key === 'custom') {
    const from = Date.parse(params.get('from') ?? '');
    const to = Date.parse(params.get('to') ?? '');
    if (Number.isFinite(from) && Number.isFinite(to) && from < to) return { key, from, to };
  }
  const known = RANGES.find(([k]) => k === key) ?? RANGES[1];
  const [k, , span] = known as [string, string, number];
  const to = Date.now();
  return { key: k, from: to - span, to };
}

function curlLine(deviceId: number): string {
  return `curl -X POST ${location.origin}/data/ -H 'content-type: application/json' -d '{"device_id": ${deviceId}, "x": 1, "y": 2, "z": 3}'`;
}

export function deviceView(main: HTMLElement, deviceId: number, params: URLSearchParams): () => void {
  const controller = new AbortController();
  const range = resolveRange(params);
  const visible: Record<Axis, boolean> = { x: true, y: true, z: true };
  let chart: uPlot | null = null;
  let timer: ReturnType<typeof setInterval> | undefined;
  let loading = false;
  // The chart library, fetched beside the page's first requests instead of before them.
  const plotting = import('./plot');

  const title = h('h1', {}, `Device #${deviceId}`);
  const status = h('div', { id: 'device-status', 'aria-live': 'polite' });
  const chartBox = h('div', {
    id: 'chart',
    class: 'chart',
    role: 'img',
    'aria-label': 'Chart of x, y and z over time',
  });
  const caption = h('p', { id: 'range-caption', class: 'hint' });
  const statsBox = h('div', { id: 'statistics', 'aria-live': 'polite' });
  const emptyBox = h('div', { id: 'empty' });
  const csv = h('a', { id: 'csv-link', class: 'button', download: true }, 'Download CSV');
  const from = h('input', {
    id: 'range-from',
    type: 'datetime-local',
    value: toLocalInput(new Date(range.from)),
  });
  const to = h('input', { id: 'range-to', type: 'datetime-local', value: toLocalInput(new Date(range.to)) });
  const refresh = h('input', { id: 'auto-refresh', type: 'checkbox' });

  const rangeButtons = h(
    'div',
    { class: 'buttons', role: 'group', 'aria-label': 'Time range' },
    RANGES.map(([key, label]) =>
      h(
        'a',
        {
          class: 'button',
          href: `#/device/${deviceId}?range=${key}`,
          'aria-current': range.key === key ? 'true' : undefined,
        },
        label,
      ),
    ),
  );
  const custom = h(
    'form',
    {
      class: 'custom-range',
      'aria-label': 'Custom range',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const start = fromLocalInput(from.value);
        const end = fromLocalInput(to.value);
        if (!start || !end || start >= end) {
          status.replaceChildren(message('error', 'Choose a start before the end.'));
          return;
        }
        location.hash = `#/device/${deviceId}${query({ range: 'custom', from: start.toISOString(), to: end.toISOString() })}`;
      },
    },
    h('label', { for: 'range-from' }, 'From'),
    from,
    h('label', { for: 'range-to' }, 'To'),
    to,
    h(
      'button',
      { type: 'submit', 'aria-current': range.key === 'custom' ? 'true' : undefined },
      'Show range',
    ),
  );
  const toggles = h(
    'fieldset',
    { class: 'toggles' },
    h('legend', {}, 'Show'),
    AXES.map((axis) =>
      h(
        'label',
        { class: 'check' },
        h('input', {
          type: 'checkbox',
          id: `show-${axis}`,
          checked: true,
          onchange: (event: Event) => {
            visible[axis] = (event.target as HTMLInputElement).checked;
            if (chart)
              for (let i = 0; i < 3; i++) chart.setSeries(seriesIndex(axis) + i, { show: visible[axis] });
          },
        }),
        h('span', { class: 'swatch', style: `background:${COLORS[axis]}`, 'aria-hidden': 'true' }),
        ` ${axis}`,
      ),
    ),
  );

  async function load(): Promise<void> {
    if (loading) return;
    loading = true;
    chartBox.setAttribute('aria-busy', 'true');
    if (range.key !== 'custom') {
      const span = range.to - range.from;
      range.to = Date.now();
      range.from = range.to - span;
    }
    const startDate = new Date(range.from).toISOString();
    const endDate = new Date(range.to).toISOString();
    const width = Math.max(280, chartBox.clientWidth);
    const { bucket } = chooseBucket(range.to - range.from, width);
    const tz = timeZone();
    const filters = { device_id: deviceId, start_date: startDate, end_date: endDate };
    csv.href = exportUrl({ format: 'csv', ...filters });
    csv.setAttribute('download', `device-${deviceId}-${startDate.slice(0, 16)}.csv`);
    const fail = (error: Error) => {
      if (error.name !== 'AbortError') status.replaceChildren(message('error', error.message));
    };
    // The device (its name, and how many readings it holds in all), its series and its statistics,
    // asked together.
    const device = answer(
      api.GET('/device/{device_id}', {
        params: { path: { device_id: deviceId } },
        signal: controller.signal,
      }),
    );
    device.then((found) => {
      title.textContent = found.name || `Device #${deviceId}`;
      document.title = `${title.textContent} · Statistics`;
    }, fail);
    // One request for the three axes: the server reads the range once.
    const asked = answer(
      api.GET('/analyze_statistics/series', {
        params: { query: { ...filters, attr: AXES.join(','), bucket, tz, fill: 'null' } },
        signal: controller.signal,
      }),
    );
    const drawn = Promise.all([asked, plotting]).then(([buckets, { createChart }]) => {
      const series = Object.fromEntries(
        AXES.map((axis) => [axis, buckets.map((b) => ({ start: b.start, ...bucketValues(b, axis) }))]),
      ) as SeriesByAxis;
      const data = toColumns(series);
      if (chart) {
        chart.setData(data);
      } else {
        chartBox.replaceChildren();
        chart = createChart(chartBox, data, range, visible);
      }
      Object.assign(chartBox.dataset, {
        from: String(range.from),
        to: String(range.to),
        bucket,
        start: startDate,
        end: endDate,
      });
      caption.textContent = `${formatDateTime(range.from)} – ${formatDateTime(range.to)} (${tz}), one point per ${bucket}: the line is the mean, the band spans min to max.`;
      chartBox.setAttribute('aria-busy', 'false');
    }, fail);
    // The statistics. The approximate answer is cheap over any range and counts its readings exactly:
    // over many, its medians and percentiles are shown (exact on a click). A device with few readings
    // in all, or a range with few, shows the exact answer instead.
    const ask = async (accuracy: Accuracy): Promise<AxisStatistics> =>
      byAxis(
        await answer(
          api.GET('/analyze_statistics/', {
            params: { query: { ...filters, attr: 'all', percentiles: PERCENTILES.join(','), accuracy } },
            signal: controller.signal,
          }),
        ),
      );
    const show = (stats: AxisStatistics): AxisStatistics => {
      statsBox.replaceChildren(
        statisticsPanel(stats, 'Statistics for this range', () => {
          ask('exact').then(show, fail);
        }),
      );
      statsBox.dataset.start = startDate;
      return stats;
    };
    const approx = ask('approx');
    const counted = device
      .then(async ({ readings }) => {
        if (readings >= APPROX_FROM_READINGS) {
          const stats = await approx;
          if (stats.x.count >= APPROX_FROM_READINGS) return stats;
        } else {
          approx.catch(() => {}); // asked before the device answered; not shown
        }
        return ask('exact');
      })
      .then(show)
      .then(async (stats) => {
        emptyBox.replaceChildren();
        if (stats.x.count === 0) {
          // The device's own count, which the device answer carries (no statistics over its history).
          const { readings } = await device;
          emptyBox.append(
            readings === 0
              ? h(
                  'div',
                  { class: 'empty' },
                  h('p', {}, 'This device has no readings yet. Send a first one:'),
                  h('pre', {}, h('code', {}, curlLine(deviceId))),
                  h(
                    'p',
                    { class: 'hint' },
                    "If the server requires ingest tokens, add -H 'X-Device-Token: dev_…'.",
                  ),
                )
              : h(
                  'div',
                  { class: 'empty' },
                  h(
                    'p',
                    {},
                    `No readings in this range: this device has ${readings} in all. Try a longer range.`,
                  ),
                ),
          );
        }
      }, fail);
    try {
      status.replaceChildren();
      await Promise.all([drawn, counted]);
    } finally {
      loading = false;
      chartBox.setAttribute('aria-busy', 'false');
    }
  }

  refresh.addEventListener('change', () => {
    clearInterval(timer);
    if (refresh.checked) timer = setInterval(() => void load(), REFRESH_MS);
  });
  const onResize = () => {
    if (chart) chart.setSize({ width: Math.max(280, chartBox.clientWidth), height: chart.height });
  };
  window.addEventListener('resize', onResize);

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/devices' }, '← Devices')),
    title,
    status,
    h(
      'section',
      { class: 'card controls', 'aria-label': 'Range and values' },
      rangeButtons,
      custom,
      toggles,
      h('label', { class: 'check' }, refresh, ` Auto-refresh every ${REFRESH_MS / 1000} s`),
      csv,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'chart-title' },
      h('h2', { id: 'chart-title' }, 'Readings'),
      caption,
      chartBox,
      emptyBox,
    ),
    h('section', { class: 'card' }, statsBox),
  );
  void load();
  return () => {
    controller.abort();
    clearInterval(timer);
    window.removeEventListener('resize', onResize);
    chart?.destroy();
  };
}
