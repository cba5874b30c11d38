import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { Reads } from '../db/read-replicas.js';
import type { Database } from '../db/tables.js';
import { forbidden, invalidQuery, notFound } from '../http/errors.js';
import { BEARER, OPTIONAL_BEARER } from '../http/openapi.js';
import { PAGE_HEADERS, sendPage } from '../http/pagination.js';
import { errorResponses, MAX_ID, NoContent } from '../http/schemas.js';
import type { Authenticator } from '../users/authenticate.js';
import type { UserRow } from '../users/queries.js';
import { newIngestToken } from './ingest-tokens.js';
import type { KnownDevices } from './known-devices.js';
import {
  deleteDevice,
  findDevice,
  findDeviceOwner,
  insertDevice,
  listDevices,
  renameDevice,
  setIngestTokenDigest,
} from './queries.js';
import {
  CreatedDevice,
  Device,
  DeviceCreate,
  DeviceListQuery,
  DeviceParams,
  DeviceUpdate,
  IngestToken,
} from './schemas.js';

export interface DeviceRoutesOptions {
  db: Kysely<Database>;
  /** Where the device list reads (a replica when one is fit). */
  reads: Reads;
  auth: Authenticator;
  devices: KnownDevices;
  ingestAuth: 'open' | 'token';
}

export const deviceRoutes: FastifyPluginAsyncTypebox<DeviceRoutesOptions> = async (
  app,
  { db, reads, auth, devices, ingestAuth },
) => {
  /** The device, if the caller may change it: its owner, or a superuser (the only one for an ownerless device). */
  async function requireManageable(id: number, user: UserRow | null): Promise<void> {
    const device = await findDeviceOwner(db, id);
    if (!device) throw notFound(`Device ${id} not found`);
    if (!user?.is_superuser && (device.user_id === null || device.user_id !== user?.id)) throw forbidden();
  }

  app.post(
    '/device/',
    {
      onRequest: auth.optionalUser,
      schema: {
        operationId: 'createDevice',
        tags: ['devices'],
        summary: 'Create a device (owned by the caller when a bearer token is sent)',
        description:
          'Answers 200, as the original service did: device firmware checks for exactly that. ' +
          'With INGEST_AUTH=token the answer carries the device ingest token, shown only this once.',
        security: OPTIONAL_BEARER,
        body: DeviceCreate,
        response: { 200: CreatedDevice, ...errorResponses(401, 408, 413, 415, 422, 503) },
      },
    },
    async (request) => {
      const secret = ingestAuth === 'token' ? newIngestToken() : undefined;
      const device = await insertDevice(db, {
        name: request.body.name ?? null,
        ownerId: request.user?.id ?? null,
        ingestTokenDigest: secret?.digest ?? null,
      });
      return secret ? { ...device, ingest_token: secret.token } : device;
    },
  );

  app.get(
    '/device/',
    {
      schema: {
        operationId: 'listDevices',
        tags: ['devices'],
        summary: 'List devices, in id order, a page at a time',
        querystring: DeviceListQuery,
        response: {
          200: { ...Type.Array(Device, { description: 'A page of devices' }), headers: PAGE_HEADERS },
          ...errorResponses(422, 503),
        },
      },
    },
    async (request, reply) => {
      const { limit, offset, cursor, user_id } = request.query;
      const afterId = parseDeviceCursor(cursor);
      const rows = await reads.read((db) => listDevices(db, { limit, offset, afterId, ownerId: user_id }));
      return sendPage(request, reply, rows, limit, (last) => String(last.id));
    },
  );

  app.get(
    '/device/:device_id',
    {
      schema: {
        operationId: 'getDevice',
        tags: ['devices'],
        summary: 'One device, with its count of readings and the time of its latest',
        params: DeviceParams,
        response: { 200: Device, ...errorResponses(404, 422, 503) },
      },
    },
    async (request) => {
      const device = await findDevice(db, request.params.device_id);
      if (!device) throw notFound(`Device ${request.params.device_id} not found`);
      return device;
    },
  );

  app.patch(
    '/device/:device_id',
    {
      onRequest: auth.activeUser,
      schema: {
        operationId: 'updateDevice',
        tags: ['devices'],
        summary: 'Rename a device (its owner or a superuser)',
        security: BEARER,
        params: DeviceParams,
        body: DeviceUpdate,
        response: { 200: Device, ...errorResponses(401, 403, 404, 408, 413, 415, 422, 503) },
      },
    },
    async (request) => {
      await requireManageable(request.params.device_id, request.user);
      return renameDevice(db, request.params.device_id, request.body.name);
    },
  );

  app.delete(
    '/device/:device_id',
    {
      onRequest: auth.activeUser,
      schema: {
        operationId: 'deleteDevice',
        tags: ['devices'],
        summary: 'Delete a device with all its readings (its owner or a superuser)',
        security: BEARER,
        params: DeviceParams,
        response: { 204: NoContent, ...errorResponses(401, 403, 404, 422, 503) },
      },
    },
    async (request, reply) => {
      const id = request.params.device_id;
      await requireManageable(id, request.user);
      await deleteDevice(db, id);
      await devices.forget(id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/device/:device_id/ingest-token',
    {
      onRequest: auth.activeUser,
      schema: {
        operationId: 'rotateIngestToken',
        tags: ['devices'],
        summary: 'Give a device a new ingest token (its owner or a superuser); the old one stops working',
        security: BEARER,
        params: DeviceParams,
        response: { 200: IngestToken, ...errorResponses(401, 403, 404, 422, 503) },
      },
    },
    async (request) => {
      const id = request.params.device_id;
      await requireManageable(id, request.user);
      const secret = newIngestToken();
      await setIngestTokenDigest(db, id, secret.digest);
      await devices.forget(id);
      return { device_id: id, ingest_token: secret.token };
    },
  );
};

function parseDeviceCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const afterId = /^\d{1,10}$/.test(cursor) ? Number(cursor) : Number.NaN;
  if (!(afterId <= MAX_ID)) throw invalidQuery('cursor', 'invalid cursor', 'value_error.cursor');
  return afterId;
}
