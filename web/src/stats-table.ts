import { AXES, type AxisStatistics, type Statistics } from './api';
import { formatNumber, h } from './dom';

export const PERCENTILES = [5, 25, 75, 95];

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
            return h(
              'td',
              {
                class: 'num',
                'data-stat': `${axis}.${key}`,
                'data-value': value === undefined ? 'null' : String(value),
              },
              formatNumber(value),
            );
          }),
        ),
      ),
    ),
  );
}
