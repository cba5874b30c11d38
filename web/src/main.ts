import './style.css';
import { answer, api, signOut } from './api';
import { authView } from './auth';
import { deviceView } from './device';
import { devicesView } from './devices';
import { h } from './dom';
import { overallView } from './overall';
import { currentUser, token } from './session';

const main = document.getElementById('main') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
let cleanup: (() => void) | undefined;

function renderNav(route: string): void {
  const user = currentUser();
  if (!token() || !user) {
    nav.replaceChildren(h('a', { href: '#/login' }, 'Sign in'), h('a', { href: '#/register' }, 'Register'));
    return;
  }
  const link = (href: string, label: string, active: boolean) =>
    h('a', { href, 'aria-current': active ? 'page' : undefined }, label);
  nav.replaceChildren(
    link('#/devices', 'Devices', route === 'devices' || route === 'device'),
    link('#/stats', 'Statistics', route === 'stats'),
    h('a', { href: '/docs' }, 'API'),
    h('span', { class: 'who', title: 'Signed in as' }, user.email),
    h(
      'button',
      {
        type: 'button',
        id: 'sign-out',
        onclick: async () => {
          await signOut();
          location.hash = '#/login';
        },
      },
      'Sign out',
    ),
  );
}

/** Hash routes (#/devices, #/device/1?range=1d, #/stats?...): the server serves only `/`, so API 404s stay 404s. */
function render(): void {
  cleanup?.();
  cleanup = undefined;
  const [path = '', search = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const params = new URLSearchParams(search);
  const [route = '', id] = path.split('/');
  const signedIn = Boolean(token());
  main.replaceChildren();
  document.title = 'Statistics';
  if (!signedIn && route !== 'login' && route !== 'register') {
    location.replace('#/login');
    return;
  }
  renderNav(route);
  if (signedIn && route !== 'login' && route !== 'register') {
    // Most reads are open to everyone, so check the session on every view: a 401 sends the user to sign in.
    answer(api.GET('/users/me')).catch(() => {});
  }
  if (route === 'login' || route === 'register') {
    if (signedIn) {
      location.replace('#/devices');
      return;
    }
    authView(main, route);
  } else if (route === 'device' && id && /^\d+$/.test(id)) {
    cleanup = deviceView(main, Number(id), params);
  } else if (route === 'stats') {
    cleanup = overallView(main, params);
  } else if (route === 'devices') {
    cleanup = devicesView(main);
  } else {
    location.replace('#/devices');
    return;
  }
  const heading = main.querySelector('h1');
  if (heading && document.activeElement === document.body) heading.setAttribute('tabindex', '-1');
}

window.addEventListener('hashchange', render);
render();
