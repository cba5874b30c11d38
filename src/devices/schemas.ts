import { type Static, Type } from '@sinclair/typebox';
import { PageQuery } from '../http/pagination.js';
import { Id } from '../http/schemas.js';

export const Device = Type.Object(
  {
    id: Type.Integer({ examples: [1] }),
    name: Type.Union([Type.String(), Type.Null()], { examples: ['greenhouse-north'] }),
    user_id: Type.Union([Type.Integer(), Type.Null()], {
      description: 'The owner, or null for an anonymous device',
    }),
    created_at: Type.String({ format: 'date-time', examples: ['2026-11-27T08:00:00.000Z'] }),
    readings: Type.Integer({ description: 'Readings stored for this device', examples: [1440] }),
    last_reading_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'The time of its latest reading, or null before the first',
      examples: ['2026-11-27T08:59:58.250Z'],
    }),
  },
  {
    $id: 'Device',
    description: 'A device, with how many readings it has sent and when the latest was taken',
  },
);
export type Device = Static<typeof Device>;

export const DeviceCreate = Type.Object(
  {
    name: Type.Optional(
      // PostgreSQL text cannot hold NUL, so neither engine takes it.
      Type.Union([Type.String({ maxLength: 50, pattern: '^[^\\u0000]*$' }), Type.Null()], {
        default: null,
        examples: ['greenhouse-north'],
      }),
    ),
  },
  { $id: 'DeviceCreate', description: 'A new device; a signed-in caller becomes its owner' },
);
export type DeviceCreate = Static<typeof DeviceCreate>;

export const CreatedDevice = Type.Object(
  {
    ...Device.properties,
    ingest_token: Type.Optional(
      Type.String({
        description:
          'With INGEST_AUTH=token: the secret POST /data/ needs in the X-Device-Token header. Shown only here.',
      }),
    ),
  },
  { $id: 'CreatedDevice', description: 'The new device; with INGEST_AUTH=token, also its ingest token' },
);

export const DeviceUpdate = Type.Object(
  { name: Type.Union([Type.String({ maxLength: 50, pattern: '^[^\\u0000]*$' }), Type.Null()]) },
  { $id: 'DeviceUpdate', description: 'A new name (or null)' },
);

export const IngestToken = Type.Object(
  {
    device_id: Type.Integer(),
    ingest_token: Type.String({
      description: 'The new secret; the previous one stops working now. Shown only here.',
    }),
  },
  { $id: 'IngestToken', description: "A device's new ingest token" },
);

export const DeviceListQuery = Type.Object({
  ...PageQuery,
  user_id: Type.Optional(Id('Only the devices of this owner')),
});

export const DeviceParams = Type.Object({ device_id: Id('Device id') });
