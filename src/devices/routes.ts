import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { invalidQuery, notFound } from '../http/errors.js';
import { PAGE_HEADERS, sendPage } from '../http/pagination.js';
import { errorResponses, MAX_ID } from '../http/schemas.js';
import type { Authenticator } from '../users/authenticate.js';
import { findDevice, insertDevice, listDevices } from './queries.js';
import { Device, DeviceCreate, DeviceListQuery, DeviceParams } from './schemas.js';

export interface DeviceRoutesOptions {
  db: Kysely<Database>;
  auth: Authenticator;
}

export const deviceRoutes: FastifyPluginAsyncTypebox<DeviceRoutesOptions> = async (app, { db, auth }) => {
  app.post(
    '/device/',
    {
      onRequest: auth.optionalUser,
      schema: {
        tags: ['devices'],
        summary: 'Create a device (owned by the caller when a bearer token is sent)',
        description: 'Answers 200, as the original service did: device firmware checks for exactly that.',
        security: [{}, { bearer: [] }],
        body: DeviceCreate,
        response: { 200: Device, ...errorResponses(401, 413, 415, 422) },
      },
    },
    async (request) => insertDevice(db, request.body.name ?? null, request.user?.id ?? null),
  );

  app.get(
    '/device/',
    {
      schema: {
        tags: ['devices'],
        summary: 'List devices, in id order, a page at a time',
        querystring: DeviceListQuery,
        response: { 200: { ...Type.Array(Device), headers: PAGE_HEADERS }, ...errorResponses(422) },
      },
    },
    async (request, reply) => {
      const { limit, cursor, user_id } = request.query;
      const rows = await listDevices(db, { limit, afterId: parseDeviceCursor(cursor), ownerId: user_id });
      return sendPage(request, reply, rows, limit, (last) => String(last.id));
    },
  );

  app.get(
    '/device/:device_id',
    {
      schema: {
        tags: ['devices'],
        summary: 'One device',
        params: DeviceParams,
        response: { 200: Device, ...errorResponses(404, 422) },
      },
    },
    async (request) => {
      const device = await findDevice(db, request.params.device_id);
      if (!device) throw notFound(`Device ${request.params.device_id} not found`);
      return device;
    },
  );
};

function parseDeviceCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const afterId = /^\d{1,10}$/.test(cursor) ? Number(cursor) : Number.NaN;
  if (!(afterId <= MAX_ID)) throw invalidQuery('cursor', 'invalid cursor', 'value_error.cursor');
  return afterId;
}
