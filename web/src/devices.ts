import { allDevices, answer, api, type CreatedDevice, type Device } from './api';
import { formatDateTime, formatNumber, h, message } from './dom';
import { currentUser } from './session';

function ownerName(device: Device): string {
  const me = currentUser();
  if (device.user_id === null) return 'nobody';
  return device.user_id === me?.id ? `you (${me.email})` : `user #${device.user_id}`;
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
          const device = await answer(
            api.POST('/device/', { body: name.value.trim() ? { name: name.value.trim() } : {} }),
          );
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
      const devices = await allDevices({ limit: 1000, user_id: mine ? me.id : undefined }, controller.signal);
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
      const rows = devices.map((device) => {
        const count = device.readings;
        const last = device.last_reading_at;
        const lastCell = h(
          'td',
          { 'data-label': 'Last reading', 'data-time': last ?? undefined },
          last ? formatDateTime(new Date(last)) : 'never',
        );
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
          lastCell,
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

function createdNote(device: CreatedDevice): HTMLElement {
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
