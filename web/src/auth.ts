import { ApiError, answer, api, signIn } from './api';
import { h, message } from './dom';
import { takeFlash } from './session';

/** Sign-in and registration share one form; registration signs in right after. */
export function authView(main: HTMLElement, mode: 'login' | 'register'): void {
  const registering = mode === 'register';
  const status = h('div', { id: 'form-status', 'aria-live': 'polite' });
  const flash = takeFlash();
  if (flash) status.append(message('info', flash));
  const email = h('input', {
    id: 'email',
    name: 'email',
    type: 'email',
    required: true,
    autocomplete: 'username',
  });
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    required: true,
    minlength: registering ? 3 : undefined,
    autocomplete: registering ? 'new-password' : 'current-password',
  });
  const submit = h(
    'button',
    { type: 'submit', class: 'primary' },
    registering ? 'Create account' : 'Sign in',
  );
  const form = h(
    'form',
    {
      class: 'card narrow',
      'aria-labelledby': 'auth-title',
      onsubmit: async (event: Event) => {
        event.preventDefault();
        submit.disabled = true;
        status.replaceChildren();
        try {
          if (registering) {
            await answer(
              api.POST('/auth/register', { body: { email: email.value, password: password.value } }),
            );
          }
          await signIn(email.value, password.value);
          location.hash = '#/devices';
        } catch (error) {
          status.replaceChildren(
            message(
              'error',
              error instanceof ApiError ? error.message : `Something went wrong: ${String(error)}`,
            ),
          );
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', { id: 'auth-title' }, registering ? 'Create an account' : 'Sign in'),
    status,
    h('label', { for: 'email' }, 'E-mail'),
    email,
    h('label', { for: 'password' }, 'Password'),
    password,
    submit,
    registering
      ? h('p', {}, 'Already have an account? ', h('a', { href: '#/login' }, 'Sign in'))
      : h('p', {}, 'New here? ', h('a', { href: '#/register' }, 'Create an account')),
  );
  main.append(form);
  email.focus();
}
