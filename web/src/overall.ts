import { type AxisStatistics, allDevices, answer, api, byAxis } from './api';
import { fromLocalInput, h, message, query, toLocalInput } from './dom';
import { type Accuracy, APPROX_FROM_READINGS, PERCENTILES, statisticsPanel } from './stats-table';

/** The statistics of everyone's readings, with /analyze_statistics/'s filters: device, user and dates. */
export function overallView(main: HTMLElement, params: URLSearchParams): () => void {
  const controller = new AbortController();
  const device = h(
    'select',
    { id: 'filter-device', name: 'device_id' },
    h('option', { value: '' }, 'All devices'),
  );
  const user = h('input', {
    id: 'filter-user',
    name: 'user_id',
    type: 'number',
    min: 1,
    inputmode: 'numeric',
    value: params.get('user_id') ?? '',
  });
  const startIso = params.get('start_date');
  const endIso = params.get('end_date');
  const start = h('input', {
    id: 'filter-start',
    type: 'datetime-local',
    value: startIso ? toLocalInput(new Date(startIso)) : '',
  });
  const end = h('input', {
    id: 'filter-end',
    type: 'datetime-local',
    value: endIso ? toLocalInput(new Date(endIso)) : '',
  });
  const result = h('div', { id: 'overall-result', 'aria-live': 'polite' });

  const form = h(
    'form',
    {
      class: 'card filters',
      'aria-label': 'Filters',
      onsubmit: (event: Event) => {
        event.preventDefault();
        location.hash = `#/stats${query({
          device_id: device.value,
          user_id: user.value,
          start_date: fromLocalInput(start.value)?.toISOString(),
          end_date: fromLocalInput(end.value)?.toISOString(),
        })}`;
      },
    },
    h('div', {}, h('label', { for: 'filter-device' }, 'Device'), device),
    h('div', {}, h('label', { for: 'filter-user' }, 'Owner (user id)'), user),
    h('div', {}, h('label', { for: 'filter-start' }, 'From'), start),
    h('div', {}, h('label', { for: 'filter-end' }, 'To'), end),
    h('button', { type: 'submit', class: 'primary' }, 'Show statistics'),
  );
  main.append(
    h('h1', {}, 'Statistics'),
    h('p', { class: 'hint' }, 'Over the readings of every device, as the API allows.'),
    form,
    h('section', { class: 'card' }, result),
  );

  allDevices({ limit: 1000 }, controller.signal, 5)
    .then((devices) => {
      for (const d of devices)
        device.append(h('option', { value: d.id }, d.name ? `${d.name} (#${d.id})` : `Device #${d.id}`));
      device.value = params.get('device_id') ?? '';
    })
    .catch(() => {});

  // Ids from the address go as they are: one that is no number is the server's 422 to explain.
  const deviceId = params.get('device_id');
  const filters = {
    attr: 'all',
    percentiles: PERCENTILES.join(','),
    device_id: deviceId ? Number(deviceId) : undefined,
    start_date: startIso ?? undefined,
    end_date: endIso ?? undefined,
  };
  const userId = params.get('user_id');
  const signal = controller.signal;
  const ask = async (accuracy: Accuracy) =>
    byAxis(
      await answer(
        userId
          ? api.GET('/analyze_statistics/{user_id}', {
              params: { path: { user_id: Number(userId) }, query: { ...filters, accuracy } },
              signal,
            })
          : api.GET('/analyze_statistics/', { params: { query: { ...filters, accuracy } }, signal }),
      ),
    );
  const show = (stats: AxisStatistics) =>
    result.replaceChildren(
      statisticsPanel(
        stats,
        userId ? `Statistics over user #${userId}'s devices` : 'Statistics over all readings',
        () => {
          ask('exact').then(show, fail);
        },
      ),
      stats.x.count === 0 ? h('p', { class: 'empty' }, 'No readings match these filters.') : '',
    );
  const fail = (error: Error) => {
    if (error.name !== 'AbortError') result.replaceChildren(message('error', error.message));
  };
  // The approximate answer is cheap over any range and counts the readings exactly: over few, the
  // exact answer is cheap too, and shown instead.
  ask('approx')
    .then((stats) => (stats.x.count >= APPROX_FROM_READINGS ? stats : ask('exact')))
    .then(show, fail);
  return () => controller.abort();
}
