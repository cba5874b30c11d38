import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { AXES, type Axis } from './api';
import { COLORS, seriesIndex } from './chart';
import { formatNumber } from './dom';

/**
 * The chart itself. uPlot and its styles are the largest part of the dashboard's script, and only the
 * device page draws a chart: this module is loaded on its own (device.ts imports it dynamically) while
 * the page's requests are in flight, so it never delays them.
 */
export function createChart(
  target: HTMLElement,
  data: uPlot.AlignedData,
  range: { from: number; to: number },
  visible: Record<Axis, boolean>,
): uPlot {
  const value = (_u: uPlot, v: number | null) => (v === null || v === undefined ? '—' : formatNumber(v));
  const series: uPlot.Series[] = [{ label: 'Time' }];
  const bands: uPlot.Band[] = [];
  for (const axis of AXES) {
    const color = COLORS[axis];
    const show = visible[axis];
    series.push(
      { label: `${axis} mean`, stroke: color, width: 2, show, value, spanGaps: false },
      { label: `${axis} min`, stroke: `${color}55`, width: 1, show, value },
      { label: `${axis} max`, stroke: `${color}55`, width: 1, show, value },
    );
    const mean = seriesIndex(axis);
    bands.push({ series: [mean + 2, mean + 1], fill: `${color}22` });
  }
  const width = Math.max(280, target.clientWidth);
  return new uPlot(
    {
      width,
      height: Math.round(Math.min(420, Math.max(240, width * 0.45))),
      series,
      bands,
      scales: { x: { time: true, range: () => [range.from / 1000, range.to / 1000] } },
      axes: [
        { stroke: '#374151', grid: { stroke: '#e5e7eb' } },
        { stroke: '#374151', grid: { stroke: '#e5e7eb' }, size: 60 },
      ],
      legend: { live: true },
      cursor: { focus: { prox: 16 } },
    },
    data,
    target,
  );
}
