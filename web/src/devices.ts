import {
  type Bucket,
  currentUser,
  type Device,
  get,
  getAll,
  query,
  type Reading,
  request,
  type Statistics,
} from './api';
import { formatDateTime, formatNumber, h, message } from './dom';

function ownerName(device: Device): string {
  const me = currentUser();
  if (device.user_id === null) return 'nobody';
  return device.user_id === me?.id ? `you (${me.email})` : `user #${device.user_id}`;
}

/**
 * When a device last sent a reading, without reading its history: the series endpoint finds the last
 * minute with readings (looking at the last 6 hours first, else at the last day with any), then one small
 * page of readings from that minute gives the exact time.
 */
export async function lastReadingTime(deviceId: number, signal: AbortSignal): Promise<Date | null> {
  const series = (params: Record<string, string | number>) =>
    get<Bucket[]>(
      `/analyze_statistics/series${query({ device_id: deviceId, attr: 'x', ...params })}`,
      signal,
    );
  const now = Date.now();
  let minutes = await series({ bucket: '1m', start_date: new Date(now - 6 * 3600_000).toISOString() });
  if (minutes.length === 0) {
    const days = await series({ bucket: '1d' });
    const lastDay = days.at(-1);
    if (!lastDay) return null;
    const from = Date.parse(lastDay.start);
    minutes = await series({
      bucket: '1m',
      start_date: new Date(from).toISOString(),
      end_date: new Date(from + 26 * 3600_000).toISOString(),
    });
  }
  const lastMinute = minutes.at(-1);
  if (!lastMinute) return null;
  const { data, headers } = await request<Reading[]>(
    `/data/${query({ device_id: deviceId, start_date: lastMinute.start, limit: 1000 })}`,
    { signal },
  );
  const last = data.at(-1);
  // A minute with more than a page of readings: the minute is close enough.
  if (!last || headers.get('link')) return new Date(Date.parse(lastMinute.start) + 60_000);
  return new Date(last.created_at);
}

async function inPool<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: size }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

export function devicesView(main: HTMLElement): () => void {
  const controller = new AbortController();
  const me = currentUser();
  const createStatus = h('div', { 'aria-live': 'polite' });
  const name = h('input', { id: 'device-name', name: 'name', maxlength: 50, placeholder: 'greenhouse' });
  const onlyMine = h('input', { id: 'only-mine', type: 'checkbox', checked: true });
  const listArea = h('div', { id: 'device-list', 'aria-live': 'polite', 'aria-busy': 'true' });

  const create = h(
    'form',
    {
      class: 'card row-form',
      'aria-labelledby': 'create-title',
      onsubmit: async (event: Event) => {
        event.preventDefault();
        createStatus.replaceChildren();
        try {
          const { data: device } = await request<Device>('/device/', {
            method: 'POST',
            json: name.value.trim() ? { name: name.value.trim() } : {},
          });
          name.value = '';
          createStatus.append(createdNote(device));
          void loadList();
        } catch (error) {
          createStatus.append(message('error', (error as Error).message));
        }
      },
    },
    h('h2', { id: 'create-title' }, 'New device'),
    h('div', { class: 'inline' }, h('label', { for: 'device-name' }, 'Name'), name),
    h('button', { type: 'submit', class: 'primary' }, 'Create device'),
  );

  async function loadList(): Promise<void> {
    listArea.setAttribute('aria-busy', 'true');
    try {
      const mine = onlyMine.checked && me;
      const [devices, counts] = await Promise.all([
        getAll<Device>(
          `/device/${query({ limit: 1000, user_id: mine ? me.id : undefined })}`,
          20,
          controller.signal,
        ),
        get<(Statistics & { device_id: number })[]>(
          `/analyze_statistics/${query({ attr: 'x', group_by: 'device' })}`,
          controller.signal,
        ),
      ]);
      const countOf = new Map(counts.map((row) => [row.device_id, row.count]));
      if (devices.length === 0) {
        listArea.replaceChildren(
          h(
            'div',
            { class: 'empty' },
            h('p', {}, mine ? 'You have no devices yet.' : 'There are no devices yet.'),
            h('p', {}, 'Create one with the form above, then send it readings.'),
          ),
        );
        return;
      }
      const lastCells = new Map<number, HTMLElement>();
      const rows = devices.map((device) => {
        const count = countOf.get(device.id) ?? 0;
        const last = h('td', { 'data-label': 'Last reading' }, count > 0 ? 'Looking…' : 'never');
        if (count > 0) lastCells.set(device.id, last);
        return h(
          'tr',
          { 'data-device-id': device.id },
          h(
            'td',
            { 'data-label': 'Name' },
            h('a', { href: `#/device/${device.id}` }, device.name || `Device #${device.id}`),
          ),
          h('td', { 'data-label': 'Owner' }, ownerName(device)),
          h('td', { 'data-label': 'Readings', class: 'num', 'data-count': count }, formatNumber(count)),
          last,
        );
      });
      listArea.replaceChildren(
        h(
          'table',
          { class: 'list' },
          h('caption', { class: 'sr-only' }, 'Devices'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Name'),
              h('th', { scope: 'col' }, 'Owner'),
              h('th', { scope: 'col', class: 'num' }, 'Readings'),
              h('th', { scope: 'col' }, 'Last reading'),
            ),
          ),
          h('tbody', {}, rows),
        ),
      );
      listArea.setAttribute('aria-busy', 'false');
      await inPool([...lastCells.keys()], 4, async (id) => {
        const cell = lastCells.get(id) as HTMLElement;
        try {
          const when = await lastReadingTime(id, controller.signal);
          cell.textContent = when ? formatDateTime(when) : 'never';
          if (when) cell.setAttribute('data-time', when.toISOString());
        } catch (error) {
          if ((error as Error).name !== 'AbortError') cell.textContent = 'unknown';
        }
      });
    } catch (error) {
      if ((error as Error).name !== 'AbortError')
        listArea.replaceChildren(message('error', (error as Error).message));
    } finally {
      listArea.setAttribute('aria-busy', 'false');
    }
  }

  onlyMine.addEventListener('change', () => void loadList());
  main.append(
    h('h1', {}, 'Devices'),
    create,
    createStatus,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'list-title' },
      h(
        'div',
        { class: 'section-head' },
        h('h2', { id: 'list-title' }, 'Your devices'),
        h('label', { class: 'check' }, onlyMine, ' Only mine'),
      ),
      listArea,
    ),
  );
  void loadList();
  return () => controller.abort();
}

function createdNote(device: Device): HTMLElement {
  const label = device.name || `Device #${device.id}`;
  const note = h(
    'div',
    { class: 'card created', role: 'status' },
    h('p', {}, 'Created ', h('a', { href: `#/device/${device.id}` }, label), ` (id ${device.id}).`),
  );
  if (device.ingest_token) {
    const secret = device.ingest_token;
    const copyStatus = h('span', { 'aria-live': 'polite', class: 'hint' });
    note.append(
      h(
        'p',
        {},
        'Its ingest token, shown only this once: keep it now. The device sends it as ',
        h('code', {}, 'X-Device-Token'),
        '.',
      ),
      h(
        'div',
        { class: 'token-row' },
        h('code', { id: 'ingest-token', class: 'token' }, secret),
        h(
          'button',
          {
            type: 'button',
            'aria-label': 'Copy the ingest token',
            onclick: async () => {
              try {
                await navigator.clipboard.writeText(secret);
                copyStatus.textContent = 'Copied.';
              } catch {
                const range = document.createRange();
                range.selectNodeContents(note.querySelector('#ingest-token') as Node);
                getSelection()?.removeAllRanges();
                getSelection()?.addRange(range);
                copyStatus.textContent = 'Selected: press Ctrl+C to copy.';
              }
            },
          },
          'Copy',
        ),
        copyStatus,
      ),
    );
  }
  return note;
}
