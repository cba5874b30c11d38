import { type Static, Type } from '@sinclair/typebox';

export const UserRead = Type.Object(
  {
    id: Type.Integer({ examples: [1] }),
    email: Type.String({ format: 'email', examples: ['owner@example.com'] }),
    is_active: Type.Boolean(),
    is_superuser: Type.Boolean(),
    is_verified: Type.Boolean(),
  },
  { $id: 'UserRead', description: 'A user, as FastAPI Users shows one (never the password hash)' },
);
export type UserRead = Static<typeof UserRead>;

const Email = Type.String({ format: 'email', maxLength: 320, examples: ['owner@example.com'] });
// argon2 takes any length; the cap keeps a request from making the server hash megabytes.
const Password = Type.String({ maxLength: 4096, examples: ['correct horse battery staple'] });
const flags = {
  is_active: Type.Optional(Type.Boolean()),
  is_superuser: Type.Optional(Type.Boolean()),
  is_verified: Type.Optional(Type.Boolean()),
};

export const UserCreate = Type.Object(
  { email: Email, password: Password, ...flags },
  {
    $id: 'UserCreate',
    description:
      'Registration. The flags are accepted and ignored: a new user is active, not superuser, not verified.',
  },
);
export type UserCreate = Static<typeof UserCreate>;

export const UserUpdate = Type.Object(
  { email: Type.Optional(Email), password: Type.Optional(Password), ...flags },
  {
    $id: 'UserUpdate',
    description:
      'Fields to change. On /users/me the flags are ignored; a superuser may set them on /users/{id}.',
  },
);
export type UserUpdate = Static<typeof UserUpdate>;

export const LoginForm = Type.Object(
  {
    username: Type.String({ description: 'The e-mail address', maxLength: 320 }),
    password: Type.String({ maxLength: 4096 }),
    grant_type: Type.Optional(Type.String({ pattern: '^password$' })),
    scope: Type.Optional(Type.String()),
    client_id: Type.Optional(Type.String()),
    client_secret: Type.Optional(Type.String()),
  },
  { $id: 'LoginForm', description: 'OAuth2 password form (application/x-www-form-urlencoded)' },
);
export type LoginForm = Static<typeof LoginForm>;

export const BearerToken = Type.Object(
  { access_token: Type.String(), token_type: Type.Literal('bearer') },
  { $id: 'BearerToken', description: 'The token to send as `Authorization: Bearer ...`' },
);

/** `/users/{id}`: any text, since FastAPI Users answers 404 (not 422) for an id that is not a number. */
export const UserIdParams = Type.Object({ id: Type.String({ description: 'User id', examples: ['1'] }) });
