import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ingestTokenDigest, newIngestToken } from '../../src/devices/ingest-tokens.js';
import { KnownDevices } from '../../src/devices/known-devices.js';
import { setIngestTokenDigest } from '../../src/devices/queries.js';
import { type Harness, onEachEngine } from '../helpers/harness.js';

onEachEngine(
  'known devices: a token rotated during a lookup',
  (h: Harness) => {
    it('never caches the old digest back: the old token stays refused, the new one is taken', async () => {
      const created = await h.post('/device/', { name: 'sensor' });
      const { id, ingest_token: oldToken } = created.json();
      // No other process to tell: the announcement goes nowhere.
      const devices = new KnownDevices(h.db, async () => {});
      // A lookup is in flight (it reads the old digest) when the rotation stores the new digest and
      // forgets the device, as the rotation route does.
      const lookup = devices.missing([id]);
      const rotated = newIngestToken();
      await setIngestTokenDigest(h.db, id, rotated.digest);
      devices.forgetHere(id);
      assert.deepEqual(await lookup, [], 'the device exists');
      assert.deepEqual(devices.refusing([id], oldToken), [id], 'the old token is refused');
      assert.deepEqual(await devices.missing([id]), []);
      assert.deepEqual(devices.refusing([id], oldToken), [id], 'still refused once read again');
      assert.deepEqual(devices.refusing([id], rotated.token), [], 'the new token opens the device');
      assert.equal(ingestTokenDigest(rotated.token), rotated.digest);
    });
  },
  { INGEST_AUTH: 'token' },
);
