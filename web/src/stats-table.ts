import { AXES, type AxisStatistics, type Statistics } from './api';
import { formatNumber, h } from './dom';

export const PERCENTILES = [5, 25, 75, 95];

/**
 * From this many readings in the range the dashboard asks for `accuracy=approx`: the median and
 * percentiles then come from the rollups' sketches (within 1%) in tens of milliseconds, where the
 * exact ones sort every reading (about 150 ms per 100,000 readings of the three values on SQLite).
 */
export const APPROX_FROM_READINGS = 100_000;

export type Accuracy = 'exact' | 'approx';

/** The statistics whose cells are approximate in an `accuracy=approx` answer. */
const APPROXIMATED = new Set(['median', ...PERCENTILES.map((p) => `p${p}`)]);

const ROWS: [string, string, (s: Statistics) => number | null | undefined][] = [
  ['count', 'Count', (s) => s.count],
  ['min', 'Min', (s) => s.min],
  ['max', 'Max', (s) => s.max],
  ['mean', 'Mean', (s) => s.mean],
  ['median', 'Median', (s) => s.median],
  ['stddev', 'Std. deviation', (s) => s.stddev],
  ...PERCENTILES.map(
    (p) =>
      [`p${p}`, `${p}th percentile`, (s: Statistics) => s.percentiles?.[String(p)]] as [
        string,
        string,
        (s: Statistics) => number | null | undefined,
      ],
  ),
];

/** One column per axis, one row per statistic; each cell keeps the exact number in data-value. */
export function statisticsTable(stats: AxisStatistics, caption: string): HTMLTableElement {
  return h(
    'table',
    { class: 'stats', 'data-testid': 'statistics' },
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Statistic'),
        AXES.map((axis) => h('th', { scope: 'col', class: 'num' }, axis)),
      ),
    ),
    h(
      'tbody',
      {},
      ROWS.map(([key, label, pick]) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, label),
          AXES.map((axis) => {
            const value = pick(stats[axis]);
            const approximate = stats[axis].approximate === true && APPROXIMATED.has(key) && value !== null;
            return h(
              'td',
              {
                class: 'num',
                'data-stat': `${axis}.${key}`,
                'data-value': value === undefined ? 'null' : String(value),
                'data-approximate': approximate ? 'true' : undefined,
                title: approximate ? `Approximate: ${bound(stats[axis])}` : undefined,
              },
              approximate ? `≈ ${formatNumber(value)}` : formatNumber(value),
            );
          }),
        ),
      ),
    ),
  );
}

/** The relative error bound of an approximate answer, as "±1%". */
function bound(stats: Statistics): string {
  return `±${Number(((stats.relative_error ?? 0) * 100).toPrecision(3))}%`;
}

/**
 * The table, and for an approximate answer a note that says which values are approximate and by how
 * much, with a button that asks for the exact values (`onExact`, which replaces the whole panel).
 */
export function statisticsPanel(stats: AxisStatistics, caption: string, onExact: () => void): HTMLElement {
  const approximate = AXES.some((axis) => stats[axis].approximate);
  const exact = h(
    'button',
    {
      type: 'button',
      id: 'exact-statistics',
      onclick: () => {
        exact.disabled = true;
        exact.textContent = 'Computing the exact values…';
        onExact();
      },
    },
    'Show exact values',
  );
  return h(
    'div',
    { class: 'statistics-panel', 'data-accuracy': approximate ? 'approx' : 'exact' },
    statisticsTable(stats, caption),
    approximate
      ? h(
          'p',
          { class: 'hint', id: 'approximate-note', role: 'note' },
          `Median and percentiles are approximate (≈ ${bound(stats.x)}), from the rollups: the range holds ` +
            `many readings. Count, min, max, mean and std. deviation are exact. `,
          exact,
        )
      : '',
  );
}
